`timescale 1ns/1ps
// sparse_engine: EIE-style sparse matrix x sparse vector unit (Han et al., ISCA 2016).
//
// out[r] = DIR[r] * sum_c W[r][c] * x[c] + BIAS[r], for a pruned, weight-shared W
// (ROWS x COLS) stored per PE in CSC with relative row indices (qfab.sparse):
//   * rows are interleaved over N PEs: row r lives on PE r mod N at local row r / N;
//   * PE p's entry memory holds words {code[CB], gap[IB]} (code 0 is the padding zero);
//     an entry's local row is (previous entry's row + 1 + gap), or gap for the first entry
//     of a column;
//   * PE p's column pointers ptr[0..COLS] (local entry addresses) sit in two banks, even
//     indices (pe_*) and odd indices (po_*), so start ptr[c] and end ptr[c+1] of a column
//     come out of one cycle's reads: even bank at (c+1)/2, odd bank at c/2;
//   * the codebook (2^CB values of VB bits, two's complement) is the CODEBOOK parameter.
//
// Dataflow per frame (input: COLS activations, SIMD per beat, element 0 at the LSBs):
//   1. leading-non-zero detection: a beat's non-zero activations are broadcast one per
//      cycle, lowest column first, as tokens {col, act}; a beat without any costs one
//      cycle. After the frame's last beat an end-of-frame token follows. A token is
//      pushed into every PE's queue (QDEPTH deep) at once; the broadcast stalls while any
//      queue is full.
//   2. each PE pops a token, reads the column's start and end pointers (1 cycle), then
//      issues one entry read per cycle (a column costs max(1, entries) cycles, pointer
//      reads overlapped with the previous column), looks the code up in the codebook,
//      multiplies by the activation and accumulates at the running row address. The
//      accumulator memory has a registered read, so the adder forwards the value written
//      in the cycle before when two consecutive entries hit the same row (a column's last
//      row and the next column's first).
//   3. accumulators are double buffered (bank = frame parity): when every PE has passed
//      a frame's end token, the drain reads that bank out as E rows per beat (rows
//      k*E .. k*E+E-1 sit on distinct PEs since E <= N), applies direction and bias from
//      the post ROM (word k: per lane {bias, dir}, dir in bit 0), and clears what it read;
//      the next frame accumulates in the other bank meanwhile. A frame two ahead waits
//      until its bank is drained.
//   After reset the engine clears both banks (RPP cycles) before it accepts input, so a
//   reset in the middle of a frame leaves nothing behind.
//
// Widths: ACC_BITS holds every final sum (partial sums may wrap: two's complement sums
// are exact modulo 2^ACC_BITS); OUT_BITS every output. Parameters PA/EA/PB/RB: address
// and pointer widths (>= 1). s_axis_tready depends on registered state only.
module sparse_engine #(
    parameter integer N = 2,          // PEs
    parameter integer COLS = 8,
    parameter integer ROWS = 4,
    parameter integer SIMD = 2,       // input elements per beat, divides COLS
    parameter integer IN_BITS = 4,
    parameter integer IN_SIGNED = 0,
    parameter integer CB = 4,         // codebook index bits
    parameter integer IB = 4,         // relative row index bits
    parameter integer VB = 4,         // codebook value bits
    parameter [(1<<CB)*VB-1:0] CODEBOOK = 0,
    parameter integer ACC_BITS = 12,
    parameter integer OUT_BITS = 12,
    parameter integer E = 1,          // output elements per beat, <= N, divides ROWS
    parameter integer QDEPTH = 4,
    parameter integer RPP = 2,        // rows per PE, ceil(ROWS / N)
    parameter integer RB = 1,         // local row bits, holds RPP - 1 (>= 1)
    parameter integer EA = 4,         // entry memory address bits
    parameter integer PA = 3,         // pointer bank address bits, holds (COLS + 1) / 2
    parameter integer PB = 4,         // pointer bits, holds the largest entry count
    parameter integer HAS_POST = 0,   // a direction / bias ROM is present
    parameter integer POST_BITS = 1,  // per lane: {bias[POST_BITS-1], dir[1]}
    parameter integer QA = 1          // post ROM address bits, holds ROWS / E - 1
) (
    input  wire                      clk,
    input  wire                      rst_n,
    input  wire [SIMD*IN_BITS-1:0]   s_axis_tdata,
    input  wire                      s_axis_tvalid,
    output wire                      s_axis_tready,
    output wire [E*OUT_BITS-1:0]     m_axis_tdata,
    output wire                      m_axis_tvalid,
    input  wire                      m_axis_tready,
    output wire [N-1:0]              e_en,
    output wire [N*EA-1:0]           e_addr,
    input  wire [N*(CB+IB)-1:0]      e_data,
    output wire [N-1:0]              pe_en,
    output wire [N*PA-1:0]           pe_addr,
    input  wire [N*PB-1:0]           pe_data,
    output wire [N-1:0]              po_en,
    output wire [N*PA-1:0]           po_addr,
    input  wire [N*PB-1:0]           po_data,
    output wire                      q_en,
    output wire [QA-1:0]             q_addr,
    input  wire [E*POST_BITS-1:0]    q_data
);
    localparam integer BEATS = COLS / SIMD;
    localparam integer CW = $clog2(COLS + 1) + 1;       // a column index, with room for +1
    localparam integer BW = $clog2(BEATS) < 1 ? 1 : $clog2(BEATS);
    localparam integer LW = $clog2(SIMD) < 1 ? 1 : $clog2(SIMD);
    localparam integer TOKW = 1 + CW + IN_BITS;             // {eof, col, act}
    localparam integer QPW = $clog2(QDEPTH) < 1 ? 1 : $clog2(QDEPTH);
    localparam integer QCW = $clog2(QDEPTH + 1);
    localparam integer BO = ROWS / E;                       // output beats per frame
    localparam integer KW = $clog2(BO + 1);
    localparam integer NW = $clog2(N + 1);
    localparam integer PRODW = VB + IN_BITS + 1;
    localparam integer SUMW = (ACC_BITS > PRODW ? ACC_BITS : PRODW) + 1;
    localparam integer OW = ACC_BITS + POST_BITS + 2;       // direction and bias applied
    localparam integer BEATS_L = BEATS - 1;
    localparam [BW-1:0] BEAT_LAST = BEATS_L[BW-1:0];
    localparam integer QD_I = QDEPTH;
    localparam [QCW-1:0] QFULL = QD_I[QCW-1:0];
    localparam integer QD_L = QDEPTH - 1;
    localparam [QPW-1:0] QLAST = QD_L[QPW-1:0];
    localparam integer RPP_L = RPP - 1;
    localparam [RB-1:0] ROW_LAST = RPP_L[RB-1:0];
    localparam [KW-1:0] BO_K = BO[KW-1:0];
    localparam [NW-1:0] N_W = N[NW-1:0];
    localparam [NW-1:0] E_W = E[NW-1:0];
    localparam integer SIMD_I = SIMD;
    localparam [CW-1:0] SIMD_C = SIMD_I[CW-1:0];

    // ------------------------------------------------------------ reset: clear both banks
    reg          init_busy;
    reg [RB-1:0] init_addr;
    always @(posedge clk) begin
        if (!rst_n) begin
            init_busy <= 1'b1;
            init_addr <= {RB{1'b0}};
        end else if (init_busy) begin
            init_addr <= init_addr + 1'b1;
            if (init_addr == ROW_LAST) init_busy <= 1'b0;
        end
    end

    // ------------------------------------------------------------ broadcast (LNZD)
    reg [SIMD*IN_BITS-1:0] cur;
    reg [SIMD-1:0]         mask;
    reg                    multi;           // mask has two or more bits set
    reg                    cur_v;
    reg [BW-1:0]           beat;
    reg                    eof_pend;
    reg                    fpar;            // bank of the frame being broadcast
    reg [1:0]              busy;            // bank holds a frame not yet drained
    wire [N-1:0]           q_full;
    wire                   drain_fin;
    reg                    d_bank;

    function automatic [SIMD-1:0] nonzero(input [SIMD*IN_BITS-1:0] d);
        integer i;
        begin
            for (i = 0; i < SIMD; i = i + 1) nonzero[i] = |d[i*IN_BITS +: IN_BITS];
        end
    endfunction

    // lowest set bit of the mask: its lane
    reg [LW-1:0] lane;
    integer li;
    always @* begin
        lane = {LW{1'b0}};
        for (li = SIMD - 1; li >= 0; li = li - 1)
            if (mask[li]) lane = li[LW-1:0];
    end
    wire [SIMD-1:0] lowest = mask & (~mask + 1'b1);
    wire [SIMD-1:0] rest = mask & ~lowest;
    // {at least 3, at least 2, at least 1} bits set, in a balanced tree of ORs and ANDs
    // (no carry chain): the "more than one left" flag is kept in a register so that
    // s_axis_tready never waits for the lowest-bit search
    function automatic [2:0] count3(input [SIMD-1:0] m);
        reg [3*SIMD-1:0] v;
        reg [2:0] a, b;
        integer i, n;
        begin
            for (i = 0; i < SIMD; i = i + 1) v[3*i +: 3] = {2'b00, m[i]};
            for (n = SIMD; n > 1; n = (n + 1) / 2) begin
                for (i = 0; i < n / 2; i = i + 1) begin
                    a = v[6*i +: 3];
                    b = v[6*i+3 +: 3];
                    v[3*i +: 3] = {a[2] | b[2] | (a[1] & b[0]) | (a[0] & b[1]),
                                   a[1] | b[1] | (a[0] & b[0]),
                                   a[0] | b[0]};
                end
                if (n % 2 == 1) v[3*(n/2) +: 3] = v[3*(n-1) +: 3];
            end
            count3 = v[2:0];
        end
    endfunction
    wire [SIMD-1:0] nz_in = nonzero(s_axis_tdata);
    /* verilator lint_off UNUSEDSIGNAL */
    wire [2:0] c_in = count3(nz_in);
    wire [2:0] c_mask = count3(mask);
    /* verilator lint_on UNUSEDSIGNAL */

    wire can_push = !init_busy && !(|q_full) && !(fpar ? busy[1] : busy[0]);
    wire push_data = cur_v && !eof_pend && (|mask) && can_push;
    wire push_eof = eof_pend && can_push;
    wire push = push_data || push_eof;
    wire beat_done = cur_v && !eof_pend && (!(|mask) || (can_push && !multi));
    assign s_axis_tready = !init_busy && !eof_pend && (!cur_v || beat_done);
    wire load = s_axis_tvalid && s_axis_tready;

    reg  [CW-1:0] col_base;                 // beat * SIMD, the beat's first column
    wire [CW-1:0] lane_c = {{(CW > LW ? CW - LW : 0){1'b0}}, lane};
    wire [CW-1:0] col = col_base + lane_c;
    wire [IN_BITS-1:0] act = cur[lane*IN_BITS +: IN_BITS];
    wire [TOKW-1:0] token = push_eof ? {1'b1, {(CW + IN_BITS){1'b0}}} : {1'b0, col, act};

    always @(posedge clk) begin
        if (load) cur <= s_axis_tdata;
        if (load) mask <= nz_in;
        else if (push_data) mask <= rest;
        if (load) multi <= c_in[1];
        else if (push_data) multi <= c_mask[2];  // two or more left after this one
    end

    always @(posedge clk) begin
        if (!rst_n) begin
            cur_v <= 1'b0;
            beat <= {BW{1'b0}};
            col_base <= {CW{1'b0}};
            eof_pend <= 1'b0;
            fpar <= 1'b0;
            busy <= 2'b00;
        end else begin
            if (load) cur_v <= 1'b1;
            else if (beat_done) cur_v <= 1'b0;
            if (beat_done) begin
                if (beat == BEAT_LAST) begin
                    beat <= {BW{1'b0}};
                    col_base <= {CW{1'b0}};
                    eof_pend <= 1'b1;
                end else begin
                    beat <= beat + 1'b1;
                    col_base <= col_base + SIMD_C;
                end
            end
            if (push_eof) begin
                eof_pend <= 1'b0;
                fpar <= ~fpar;
            end
            // a bank is busy from its frame's end token until its drain is over (the two
            // never coincide: the end token waits for the bank to be free)
            if (drain_fin && !d_bank) busy[0] <= 1'b0;
            else if (push_eof && !fpar) busy[0] <= 1'b1;
            if (drain_fin && d_bank) busy[1] <= 1'b0;
            else if (push_eof && fpar) busy[1] <= 1'b1;
        end
    end

    // ------------------------------------------------------------ drain control
    wire [N-1:0] done0, done1;              // PE passed the end token of bank 0 / 1
    wire d_go = d_bank ? &done1 : &done0;
    reg [KW-1:0] k_iss;
    reg [NW-1:0] b_mod;
    reg [RB:0]   b_div;
    reg          r_v, r_last;
    reg [NW-1:0] r_mod;
    reg [RB:0]   r_div;
    reg          o_v;
    wire [E*OUT_BITS-1:0] o_data;
    wire o_free = !o_v || m_axis_tready;
    wire issue = d_go && (k_iss != BO_K) && (!r_v || o_free);
    wire r_move = r_v && o_free;
    assign drain_fin = r_move && r_last;
    assign q_en = issue;
    assign q_addr = k_iss[QA-1:0];
    assign m_axis_tvalid = o_v;
    assign m_axis_tdata = o_data;

    wire [NW:0] b_next = {1'b0, b_mod} + {1'b0, E_W};
    always @(posedge clk) begin
        if (!rst_n) begin
            k_iss <= {KW{1'b0}};
            b_mod <= {NW{1'b0}};
            b_div <= {(RB + 1){1'b0}};
            r_v <= 1'b0;
            r_last <= 1'b0;
            d_bank <= 1'b0;
            o_v <= 1'b0;
        end else begin
            if (drain_fin) begin
                k_iss <= {KW{1'b0}};
                b_mod <= {NW{1'b0}};
                b_div <= {(RB + 1){1'b0}};
                d_bank <= ~d_bank;
            end else if (issue) begin
                k_iss <= k_iss + 1'b1;
                if (b_next >= {1'b0, N_W}) begin
                    b_mod <= b_next[NW-1:0] - N_W;
                    b_div <= b_div + 1'b1;
                end else begin
                    b_mod <= b_next[NW-1:0];
                end
            end
            if (issue) begin
                r_v <= 1'b1;
                r_last <= (k_iss + 1'b1 == BO_K);
                r_mod <= b_mod;
                r_div <= b_div;
            end else if (r_move) begin
                r_v <= 1'b0;
            end
            if (r_move) o_v <= 1'b1;
            else if (m_axis_tready) o_v <= 1'b0;
        end
    end

    // ------------------------------------------------------------ PEs
    wire [N*ACC_BITS-1:0] rd_drain;         // each PE's drained accumulator (R stage)

    genvar p;
    generate
        for (p = 0; p < N; p = p + 1) begin : g_pe
            localparam [NW-1:0] P_W = p;
            // ---- activation queue
            reg [TOKW-1:0] qmem [0:QDEPTH-1];
            reg [QCW-1:0]  qcnt;
            reg [QPW-1:0]  qrd, qwr;
            wire           q_empty = (qcnt == {QCW{1'b0}});
            wire [TOKW-1:0] head = qmem[qrd];
            assign q_full[p] = (qcnt == QFULL);
            // ---- pointer stage (P) and issue stage (I)
            reg            p_v, p_eof, p_odd;
            reg [IN_BITS-1:0] p_act;
            reg            i_v, i_first, i_bank;
            reg [1:0]      i_kind;          // 0: entries, 1: empty column, 2: end token
            reg [PB-1:0]   i_ptr, i_end;
            reg [IN_BITS-1:0] i_act;
            wire           i_last = i_v && (i_kind != 2'd0 || i_ptr + 1'b1 == i_end);
            wire           i_free = !i_v || i_last;
            wire           p_take = p_v && i_free;
            wire           pop = !q_empty && (!p_v || p_take);
            wire [CW-1:0]  h_col = head[CW+IN_BITS-1:IN_BITS];
            /* verilator lint_off UNUSEDSIGNAL */
            wire [CW:0]    h_col1 = {1'b0, h_col} + 1'b1;
            /* verilator lint_on UNUSEDSIGNAL */
            assign pe_en[p] = pop;
            assign po_en[p] = pop;
            assign pe_addr[p*PA +: PA] = h_col1[PA:1];
            assign po_addr[p*PA +: PA] = h_col[PA:1];
            wire [PB-1:0]  ev = pe_data[p*PB +: PB];
            wire [PB-1:0]  od = po_data[p*PB +: PB];
            wire [PB-1:0]  p_start = p_odd ? od : ev;
            wire [PB-1:0]  p_stop = p_odd ? ev : od;
            assign e_en[p] = i_v && i_kind == 2'd0;
            assign e_addr[p*EA +: EA] = i_ptr[EA-1:0];

            always @(posedge clk) begin
                if (push) qmem[qwr] <= token;
                if (p_take) begin
                    i_ptr <= p_start;
                    i_end <= p_stop;
                    i_act <= p_act;
                end else if (i_v && i_kind == 2'd0) begin
                    i_ptr <= i_ptr + 1'b1;
                end
                if (pop) begin
                    p_eof <= head[TOKW-1];
                    p_odd <= h_col[0];
                    p_act <= head[IN_BITS-1:0];
                end
            end
            always @(posedge clk) begin
                if (!rst_n) begin
                    qcnt <= {QCW{1'b0}};
                    qrd <= {QPW{1'b0}};
                    qwr <= {QPW{1'b0}};
                    p_v <= 1'b0;
                    i_v <= 1'b0;
                    i_kind <= 2'd0;
                    i_first <= 1'b0;
                    i_bank <= 1'b0;
                end else begin
                    if (push) qwr <= (qwr == QLAST) ? {QPW{1'b0}} : qwr + 1'b1;
                    if (pop) qrd <= (qrd == QLAST) ? {QPW{1'b0}} : qrd + 1'b1;
                    if (push && !pop) qcnt <= qcnt + 1'b1;
                    else if (pop && !push) qcnt <= qcnt - 1'b1;
                    if (pop) p_v <= 1'b1;
                    else if (p_take) p_v <= 1'b0;
                    if (i_v && i_kind == 2'd2) i_bank <= ~i_bank;
                    if (p_take) begin
                        i_v <= 1'b1;
                        i_first <= 1'b1;
                        i_kind <= p_eof ? 2'd2 : (p_start == p_stop) ? 2'd1 : 2'd0;
                    end else if (i_last) begin
                        i_v <= 1'b0;
                    end else if (i_v) begin
                        i_first <= 1'b0;
                    end
                end
            end

            // ---- entry (E), multiply (M), accumulate (A)
            reg              e_v, e_eof, e_first, e_bank;
            reg [IN_BITS-1:0] e_act;
            reg [RB-1:0]     row_prev;
            wire [CB+IB-1:0] ew = e_data[p*(CB+IB) +: (CB+IB)];
            wire [CB-1:0]    code = ew[CB+IB-1:IB];
            wire [IB:0]      gap1 = {1'b0, ew[IB-1:0]} + {{IB{1'b0}}, ~e_first};
            /* verilator lint_off UNUSEDSIGNAL */
            wire [RB+IB:0]   row_w = (e_first ? {(RB + IB + 1){1'b0}} : {{(IB + 1){1'b0}}, row_prev})
                                     + {{RB{1'b0}}, gap1};
            /* verilator lint_on UNUSEDSIGNAL */
            wire [RB-1:0]    row = row_w[RB-1:0];
            wire signed [VB-1:0] value = CODEBOOK[code*VB +: VB];
            wire signed [IN_BITS:0] act_s = {(IN_SIGNED != 0) ? e_act[IN_BITS-1] : 1'b0, e_act};
            wire signed [PRODW-1:0] prod = value * act_s;
            reg              m_v, m_eof, m_bank;
            reg [RB-1:0]     m_row;
            reg signed [PRODW-1:0] m_prod;
            reg              a_v, a_eof, a_bank;
            reg [RB-1:0]     a_row;
            reg signed [PRODW-1:0] a_prod;
            reg              l_v, l_bank;
            reg              d0, d1;           // passed the end token of bank 0 / 1
            assign done0[p] = d0;
            assign done1[p] = d1;
            reg [RB-1:0]     l_row;
            reg [ACC_BITS-1:0] l_val;
            reg [ACC_BITS-1:0] rd0, rd1;
            wire [ACC_BITS-1:0] rd_a = a_bank ? rd1 : rd0;
            wire [ACC_BITS-1:0] base = (l_v && l_row == a_row && l_bank == a_bank) ? l_val : rd_a;
            /* verilator lint_off UNUSEDSIGNAL */
            wire signed [SUMW-1:0] sum_w = $signed({{(SUMW - ACC_BITS){base[ACC_BITS-1]}}, base})
                                         + $signed({{(SUMW - PRODW){a_prod[PRODW-1]}}, a_prod});
            /* verilator lint_on UNUSEDSIGNAL */
            wire [ACC_BITS-1:0] sum = sum_w[ACC_BITS-1:0];

            always @(posedge clk) begin
                e_first <= i_first;
                e_act <= i_act;
                e_bank <= i_bank;
                if (e_v) row_prev <= row;
                m_row <= row;
                m_prod <= prod;
                m_bank <= e_bank;
                a_row <= m_row;
                a_prod <= m_prod;
                a_bank <= m_bank;
                l_row <= a_row;
                l_bank <= a_bank;
                l_val <= sum;
            end
            always @(posedge clk) begin
                if (!rst_n) begin
                    e_v <= 1'b0;
                    e_eof <= 1'b0;
                    m_v <= 1'b0;
                    m_eof <= 1'b0;
                    a_v <= 1'b0;
                    a_eof <= 1'b0;
                    l_v <= 1'b0;
                    d0 <= 1'b0;
                    d1 <= 1'b0;
                end else begin
                    e_v <= i_v && i_kind == 2'd0;
                    e_eof <= i_v && i_kind == 2'd2;
                    m_v <= e_v;
                    m_eof <= e_eof;
                    a_v <= m_v;
                    a_eof <= m_eof;
                    l_v <= a_v;
                    if (drain_fin && !d_bank) d0 <= 1'b0;
                    else if (a_eof && !a_bank) d0 <= 1'b1;
                    if (drain_fin && d_bank) d1 <= 1'b0;
                    else if (a_eof && a_bank) d1 <= 1'b1;
                end
            end

            // ---- drain addressing: this PE's lane in the beat and its local row
            wire           low = P_W < b_mod;                 // wraps into the next row set
            wire [NW-1:0]  ln = low ? P_W + N_W - b_mod : P_W - b_mod;
            /* verilator lint_off UNUSEDSIGNAL */
            wire [RB:0]    d_addr = low ? b_div + 1'b1 : b_div;
            /* verilator lint_on UNUSEDSIGNAL */
            wire           d_hit = ln < E_W;
            wire           r_low = P_W < r_mod;
            wire [NW-1:0]  r_ln = r_low ? P_W + N_W - r_mod : P_W - r_mod;
            /* verilator lint_off UNUSEDSIGNAL */
            wire [RB:0]    r_addr = r_low ? r_div + 1'b1 : r_div;
            /* verilator lint_on UNUSEDSIGNAL */
            wire           clear = r_move && (r_ln < E_W);

            // ---- accumulator banks: one read and one write port each
            reg [ACC_BITS-1:0] acc0 [0:RPP-1];
            reg [ACC_BITS-1:0] acc1 [0:RPP-1];
            wire d_on0 = d_go && !d_bank;
            wire d_on1 = d_go && d_bank;
            wire re0 = d_on0 ? (issue && d_hit) : (m_v && !m_bank);
            wire re1 = d_on1 ? (issue && d_hit) : (m_v && m_bank);
            wire [RB-1:0] ra0 = d_on0 ? d_addr[RB-1:0] : m_row;
            wire [RB-1:0] ra1 = d_on1 ? d_addr[RB-1:0] : m_row;
            wire we0 = init_busy || (clear && !d_bank) || (a_v && !a_bank);
            wire we1 = init_busy || (clear && d_bank) || (a_v && a_bank);
            wire [RB-1:0] wa0 = init_busy ? init_addr : (clear && !d_bank) ? r_addr[RB-1:0] : a_row;
            wire [RB-1:0] wa1 = init_busy ? init_addr : (clear && d_bank) ? r_addr[RB-1:0] : a_row;
            wire [ACC_BITS-1:0] wd0 = (init_busy || (clear && !d_bank)) ? {ACC_BITS{1'b0}} : sum;
            wire [ACC_BITS-1:0] wd1 = (init_busy || (clear && d_bank)) ? {ACC_BITS{1'b0}} : sum;
            always @(posedge clk) begin
                if (we0) acc0[wa0] <= wd0;
                if (re0) rd0 <= acc0[ra0];
            end
            always @(posedge clk) begin
                if (we1) acc1[wa1] <= wd1;
                if (re1) rd1 <= acc1[ra1];
            end
            assign rd_drain[p*ACC_BITS +: ACC_BITS] = d_bank ? rd1 : rd0;
        end
    endgenerate

    // ------------------------------------------------------------ output lanes
    genvar l;
    generate
        for (l = 0; l < E; l = l + 1) begin : g_lane
            localparam [NW-1:0] L_W = l;
            wire [NW:0] s = {1'b0, r_mod} + {1'b0, L_W};
            /* verilator lint_off UNUSEDSIGNAL */
            wire [NW:0] pw = (s >= {1'b0, N_W}) ? s - {1'b0, N_W} : s;
            /* verilator lint_on UNUSEDSIGNAL */
            wire [ACC_BITS-1:0] a = rd_drain[pw[NW-1:0]*ACC_BITS +: ACC_BITS];
            wire signed [OW-1:0] av = $signed({{(OW - ACC_BITS){a[ACC_BITS-1]}}, a});
            /* verilator lint_off UNUSEDSIGNAL */
            wire signed [OW-1:0] v;
            /* verilator lint_on UNUSEDSIGNAL */
            if (HAS_POST != 0) begin : g_post
                wire [POST_BITS-1:0] pq = q_data[l*POST_BITS +: POST_BITS];
                wire signed [OW-1:0] bias;
                if (POST_BITS > 1) begin : g_bias
                    wire [POST_BITS-2:0] braw = pq[POST_BITS-1:1];
                    assign bias = $signed({{(OW - POST_BITS + 1){braw[POST_BITS-2]}}, braw});
                end else begin : g_nobias
                    assign bias = {OW{1'b0}};
                end
                assign v = (pq[0] ? -av : av) + bias;
            end else begin : g_plain
                assign v = av;
                if (l == 0) begin : g_noq
                    /* verilator lint_off UNUSEDSIGNAL */
                    wire unused_q = ^q_data;
                    /* verilator lint_on UNUSEDSIGNAL */
                end
            end
            reg [OUT_BITS-1:0] o_lane;
            always @(posedge clk) begin
                if (r_move) o_lane <= v[OUT_BITS-1:0];
            end
            assign o_data[l*OUT_BITS +: OUT_BITS] = o_lane;
        end
    endgenerate
endmodule

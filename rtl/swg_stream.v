`timescale 1ns/1ps
// swg_stream: sliding-window (im2col) generator over a ring of line buffers, in the spirit
// of FINN's ConvolutionInputGenerator.
//
// Computes, per frame (an H x W x C image, raster order, channels innermost), for every
// output pixel (oy, ox) of the OH x OW output in raster order, the KH*KW*C window elements
// in order (ky, kx, c) (taps row-major, channels innermost). Element (ky, kx, c) is input
// pixel (oy*SH + ky - PH, ox*SW + kx - PW), channel c, or zero padding outside the image:
//   OH = (H + 2*PH - KH)/SH + 1,   OW = (W + 2*PW - KW)/SW + 1.
// PH rows of padding on top and bottom, PW columns left and right; 0 <= PH < KH and
// 0 <= PW < KW (every window holds at least one image row and column).
//
// Parameters / formats:
//   EBITS, OBITS  bits of an input / output element. IN_BIPOLAR = 0: OBITS == EBITS, the
//                 element is passed on, padding is all-zero bits. IN_BIPOLAR = 1: EBITS == 1,
//                 input bit 1 -> +1, 0 -> -1, output OBITS (= 2) bit two's complement:
//                 +1 -> 01, -1 -> 11, padding -> 00.
//   ELEMS         elements per input beat and per line-buffer word (ELEMS divides C).
//                 CW = C/ELEMS words per pixel, RW = W*CW words per image row.
//   TAPS          words per output beat. TAPS == 1: a beat is ELEMS channels of one tap
//                 (ELEMS*OBITS bits). TAPS > 1 (only with ELEMS == C, TAPS divides KH*KW):
//                 a beat is TAPS consecutive taps of C elements (TAPS*C*OBITS bits).
//                 Element 0 at the least significant bits in both cases.
//   ROWS          image rows held by the line buffer (ring of ROWS*RW words); see below.
// Beats per frame: input H*W*CW, output OH*OW*KH*KW*CW/TAPS.
//
// Schedule: a writer stores input rows into the ring (global row g -> slot g mod ROWS,
// counted across frames), a reader emits output rows. D = (rows written) - (lowest row the
// reader's current output row needs) is the only shared state. With, for output row oy,
// lo = max(0, oy*SH - PH) and hi = min(H, oy*SH - PH + KH) (rows [lo, hi) are needed):
//   - the reader emits output row oy while D >= hi - lo (all its rows are written); after
//     its last beat D drops by the distance to the next output row's lo (into the next
//     frame after the last output row: H - lo, so rows no window uses are skipped);
//   - the writer accepts input while D < ROWS (the row being written overwrites none that
//     the reader still needs); s_axis_tready = (D < ROWS), registered state only.
// Frames follow back to back; output row 0 of frame f+1 starts as soon as its rows are in,
// while the writer may already store frame f+1 during frame f's last output rows.
//
// ROWS (the generator computes both with these formulas; per-row times in cycles:
// To = OW*KH*KW*CW/TAPS per output row, Ti = RW per input row; output rows are numbered
// k across frames: lo(k) = floor(k/OH)*H + lo(k mod OH), likewise hi, also for k < 0):
//   minimum (correct, no deadlock, any stalls):
//     ROWS_MIN = max over oy in [0, OH) of hi(oy) - lo(oy)          (at most min(KH, H))
//   full throughput, with P = max(OH*To, H*Ti) (cycles per frame at full rate):
//     ROWS_FULL = max(ROWS_MIN, max over k in [0, OH), d in [1, OH+1] of
//                     hi(k) - lo(k - d) - floor((d - 1)*P / (OH*Ti)))
//   d = 1 is the look-ahead hi(k) - lo(k-1): the next output row's rows must fit beside
//   the current one's; larger d ask for the rows the writer must store ahead when output
//   rows take less time than the input rows they consume. Exact (the smallest ROWS with
//   full throughput) when the output is the bottleneck (OH*To >= H*Ti); sufficient, maybe
//   a row or two above the need, otherwise. Examples (TAPS == 1): 3x3 stride 1 pad 1: 4
//   (KH+1); 3x3 stride 1 pad 0: 6 (2*KH: frame f+1's first KH rows arrive while frame f's
//   last output row holds KH rows); 2x2 stride 2: 4; 1x1: 2; 5x5 pad 2: 6.
//
// Throughput: with ROWS >= ROWS_FULL, input always valid and output always ready, the
// steady-state frame period is P = max(OH*To, H*Ti) cycles, reached from the second frame
// on: one output beat every cycle, across frame boundaries too, when the output side is
// the bottleneck (OH*To >= H*Ti: e.g. every TAPS == 1 kernel with KH*KW > SH*SW on all but
// tiny images), otherwise one input beat every cycle. With ROWS_MIN <= ROWS < ROWS_FULL
// everything is correct, only slower. The writer waits only while the row it would write
// is still needed by the reader.
//
// Latency: m_axis_tvalid rises at the second clock edge after the edge that accepted the
// last input beat of the last row an output beat needs (read stage, output register; the
// beat is taken at the third edge when m_axis_tready is high). The first beats of a frame
// need rows [0, min(H, KH - PH)).
//
// Memory mapping: word address = slot*RW + x*CW + w (slot = global row mod ROWS, pixel
// column x, word w of the pixel). TAPS == 1: one write port and ONE synchronous read port
// with enable (`if (adv) rq <= mem[raddr]`, no reset on mem or rq), so synthesis infers
// block RAM (ROWS*RW words of ELEMS*EBITS bits; e.g. Yosys synth_xilinx maps 32x32x16,
// ELEMS 4, EBITS 4, ROWS 4 to one RAMB18E1); padding is a registered flag muxed after rq
// into the output register. TAPS > 1: TAPS synchronous reads per cycle of the same array
// (slot base and padding per tap row and column computed once, each tap picks its pair
// by the beat index), which maps to multi-port LUT RAM or registers: meant for small
// images only (ROWS*W*C*EBITS bits).
// Handshake: m_axis_tvalid/tdata come from registers; s_axis_tready = (D < ROWS) depends
// on registered state only. Reset (synchronous, active low) clears control state only.
module swg_stream #(
    parameter integer H = 8,
    parameter integer W = 8,
    parameter integer C = 2,
    parameter integer KH = 3,
    parameter integer KW = 3,
    parameter integer SH = 1,
    parameter integer SW = 1,
    parameter integer PH = 1,
    parameter integer PW = 1,
    parameter integer EBITS = 2,
    parameter integer OBITS = 2,
    parameter integer IN_BIPOLAR = 0,
    parameter integer ELEMS = 1,
    parameter integer TAPS = 1,
    parameter integer ROWS = 4
) (
    input  wire                        clk,
    input  wire                        rst_n,
    input  wire [ELEMS*EBITS-1:0]      s_axis_tdata,
    input  wire                        s_axis_tvalid,
    output wire                        s_axis_tready,
    output wire [TAPS*ELEMS*OBITS-1:0] m_axis_tdata,
    output wire                        m_axis_tvalid,
    input  wire                        m_axis_tready
);
    localparam integer CW = C / ELEMS;
    localparam integer RW = W * CW;
    localparam integer DEPTH = ROWS * RW;
    localparam integer AW = (DEPTH > 1) ? $clog2(DEPTH) : 1;
    localparam integer OH = (H + 2*PH - KH) / SH + 1;
    localparam integer OW = (W + 2*PW - KW) / SW + 1;
    localparam integer KK = KH * KW;
    localparam integer WB = ELEMS * EBITS;
    // signed width of every position, counter and of D (generous: no overflow anywhere;
    // at least AW + 1 so a word column can be sliced to an address)
    localparam integer MAXV = H + W + RW + ROWS + KK + (KW + PW + SW) * CW
                              + KH + PH + SH + OW + OH + 8;
    localparam integer PB0 = $clog2(MAXV) + 2;
    localparam integer PB = (PB0 > AW) ? PB0 : AW + 1;
    // ring offsets (slots): of the virtual top row of output row 0 of frame 0, step per
    // output row, step from the last output row of a frame to row 0 of the next
    localparam integer T0 = ((-PH % ROWS) + ROWS) % ROWS;
    localparam integer SHM = SH % ROWS;
    localparam integer FJM = (((H - (OH - 1) * SH) % ROWS) + ROWS) % ROWS;

    // sized constants (integers sliced to width, so every expression is width-exact)
    localparam integer I_H = H, I_KH = KH, I_SH = SH, I_ROWS = ROWS, I_RW = RW;
    localparam integer I_NPH = -PH, I_NPW = -(PW * CW), I_SWCW = SW * CW;
    localparam integer I_JL = KW * CW - 1, I_KYL = KH - 1, I_OXL = OW - 1, I_OYL = OH - 1;
    localparam integer I_ONE = 1, I_ZERO = 0;
    localparam integer I_RWM1 = RW - 1, I_DEPTH = DEPTH;
    localparam integer I_AT0 = T0 * RW, I_ASHM = SHM * RW, I_AFJM = FJM * RW;
    localparam signed [PB-1:0] P_H = I_H[PB-1:0], P_KH = I_KH[PB-1:0];
    localparam signed [PB-1:0] P_SH = I_SH[PB-1:0], P_ROWS = I_ROWS[PB-1:0];
    localparam signed [PB-1:0] P_RW = I_RW[PB-1:0], P_NPH = I_NPH[PB-1:0];
    localparam signed [PB-1:0] P_NPW = I_NPW[PB-1:0], P_SWCW = I_SWCW[PB-1:0];
    localparam signed [PB-1:0] P_JL = I_JL[PB-1:0], P_KYL = I_KYL[PB-1:0];
    localparam signed [PB-1:0] P_OXL = I_OXL[PB-1:0], P_OYL = I_OYL[PB-1:0];
    localparam signed [PB-1:0] P_ONE = I_ONE[PB-1:0], P_ZERO = I_ZERO[PB-1:0];
    localparam [AW-1:0] A_RWM1 = I_RWM1[AW-1:0], A_T0 = I_AT0[AW-1:0];
    localparam [AW:0] A1_RW = I_RW[AW:0], A1_DEPTH = I_DEPTH[AW:0];
    localparam [AW:0] A1_SHM = I_ASHM[AW:0], A1_FJM = I_AFJM[AW:0];

    // (a + b) mod DEPTH for a < DEPTH, b <= DEPTH
    function automatic [AW-1:0] addmod(input [AW-1:0] a, input [AW:0] b);
        reg [AW:0] s;
        begin
            s = {1'b0, a} + b;
            if (s >= A1_DEPTH) s = s - A1_DEPTH;
            addmod = s[AW-1:0];
        end
    endfunction

    // ---------------------------------------------------------------- line buffer
    reg [WB-1:0] mem [0:DEPTH-1];

    // ---------------------------------------------------------------- shared state
    reg signed [PB-1:0] d;      // rows written - lowest row needed by the reader
    reg signed [PB-1:0] oy, ox; // output pixel being read
    reg signed [PB-1:0] top;    // oy*SH - PH: image row of tap row 0
    reg signed [PB-1:0] leftw;  // (ox*SW - PW)*CW: word offset of tap column 0 in a row
    reg [AW-1:0] tbase;         // slot*RW of the virtual row top (tap row 0)
    reg [AW-1:0] wbase;         // writer: slot*RW of the row being written
    reg [AW-1:0] wcol;          // writer: word within the row
    reg v1;                     // read stage holds a beat
    reg [TAPS-1:0] pad1;        // read stage: tap is padding
    reg m_valid;
    reg [TAPS*ELEMS*OBITS-1:0] m_data;

    wire pix_last;              // the beat being read is the last of its output pixel
    wire [TAPS-1:0] pad_now;    // padding flags of the beat being read
    wire [TAPS*WB-1:0] q;       // read stage data (registers in the branches below)

    // writer
    wire w_ok = (d < P_ROWS);
    wire in_fire = s_axis_tvalid && w_ok;
    wire w_row_end = in_fire && (wcol == A_RWM1);
    assign s_axis_tready = w_ok;

    // reader: rows [lo, hi) of the current output row must be written
    wire signed [PB-1:0] lo = (top < P_ZERO) ? P_ZERO : top;
    wire signed [PB-1:0] top_kh = top + P_KH;
    wire signed [PB-1:0] hi = (top_kh > P_H) ? P_H : top_kh;
    wire can = (d >= hi - lo);
    wire adv = !m_valid || m_axis_tready;   // the pipeline moves
    wire issue = adv && can;                // a read happens this cycle
    wire last_ox = (ox == P_OXL);
    wire last_oy = (oy == P_OYL);
    wire row_end = issue && pix_last && last_ox;
    wire signed [PB-1:0] top_next = top + P_SH;
    wire signed [PB-1:0] lo_next = (top_next < P_ZERO) ? P_ZERO : top_next;
    wire signed [PB-1:0] dec = last_oy ? P_H - lo : lo_next - lo;
    wire [AW-1:0] tbase_next = addmod(tbase, last_oy ? A1_FJM : A1_SHM);
    wire signed [PB-1:0] d_inc = w_row_end ? P_ONE : P_ZERO;
    wire signed [PB-1:0] d_dec = row_end ? dec : P_ZERO;

    always @(posedge clk) begin
        if (in_fire) mem[wbase + wcol] <= s_axis_tdata;
    end

    always @(posedge clk) begin
        if (!rst_n) begin
            d <= P_ZERO;
            oy <= P_ZERO;
            ox <= P_ZERO;
            top <= P_NPH;
            leftw <= P_NPW;
            tbase <= A_T0;
            wbase <= {AW{1'b0}};
            wcol <= {AW{1'b0}};
            v1 <= 1'b0;
            m_valid <= 1'b0;
        end else begin
            d <= d + d_inc - d_dec;
            if (in_fire) begin
                if (w_row_end) begin
                    wcol <= {AW{1'b0}};
                    wbase <= addmod(wbase, A1_RW);
                end else begin
                    wcol <= wcol + 1'b1;
                end
            end
            if (issue && pix_last) begin
                ox <= last_ox ? P_ZERO : ox + P_ONE;
                leftw <= last_ox ? P_NPW : leftw + P_SWCW;
            end
            if (row_end) begin
                oy <= last_oy ? P_ZERO : oy + P_ONE;
                top <= last_oy ? P_NPH : top_next;
                tbase <= tbase_next;
            end
            if (adv) begin
                v1 <= can;
                m_valid <= v1;
            end
        end
    end

    // ---------------------------------------------------------------- read stage
    generate
        if (TAPS == 1) begin : g_bram
            // one tap per beat: word j = kx*CW + w of tap row ky; one block-RAM read port
            reg signed [PB-1:0] j, ky;
            reg [AW-1:0] rbase;     // slot*RW of tap row ky
            reg [WB-1:0] rq;
            wire signed [PB-1:0] row = top + ky;
            wire signed [PB-1:0] colw = leftw + j;
            wire [AW-1:0] raddr = rbase + colw[AW-1:0];
            wire last_j = (j == P_JL);
            wire last_ky = (ky == P_KYL);
            assign pix_last = last_j && last_ky;
            assign pad_now = (row < P_ZERO) || (row >= P_H) || (colw < P_ZERO) || (colw >= P_RW);
            assign q = rq;
            always @(posedge clk) begin
                if (adv) rq <= mem[raddr];
            end
            always @(posedge clk) begin
                if (!rst_n) begin
                    j <= P_ZERO;
                    ky <= P_ZERO;
                    rbase <= A_T0;
                end else if (issue) begin
                    j <= last_j ? P_ZERO : j + P_ONE;
                    if (last_j) begin
                        ky <= last_ky ? P_ZERO : ky + P_ONE;
                        if (!last_ky) rbase <= addmod(rbase, A1_RW);
                        else if (row_end) rbase <= tbase_next;
                        else rbase <= tbase;
                    end
                end
            end
        end else begin : g_regs
            // TAPS taps (whole pixels, CW == 1) per beat, beat b of the pixel holds taps
            // b*TAPS .. b*TAPS+TAPS-1: per tap row and column the slot base, position and
            // padding are computed once, each tap selects its pair by b (constant tables),
            // then TAPS synchronous reads of the register array.
            localparam integer NB = KK / TAPS;
            localparam integer BB = (NB > 1) ? $clog2(NB) : 1;
            localparam integer I_BL = NB - 1;
            localparam [BB-1:0] B_LAST = I_BL[BB-1:0];
            reg [BB-1:0] b;
            wire [KH*AW-1:0] bases;     // slot*RW of tap row ky
            wire [KH-1:0] row_ok;
            wire [KW*PB-1:0] cols;      // image column of tap column kx
            wire [KW-1:0] col_ok;
            genvar gk;
            for (gk = 0; gk < KH; gk = gk + 1) begin : g_row
                localparam integer I_K = gk, I_AK = (gk % ROWS) * RW;
                localparam signed [PB-1:0] P_K = I_K[PB-1:0];
                localparam [AW:0] A1_K = I_AK[AW:0];
                wire signed [PB-1:0] row = top + P_K;
                assign row_ok[gk] = (row >= P_ZERO) && (row < P_H);
                assign bases[gk*AW +: AW] = addmod(tbase, A1_K);
            end
            for (gk = 0; gk < KW; gk = gk + 1) begin : g_col
                localparam integer I_K = gk;
                localparam signed [PB-1:0] P_K = I_K[PB-1:0];
                wire signed [PB-1:0] col = leftw + P_K;
                assign cols[gk*PB +: PB] = col;
                assign col_ok[gk] = (col >= P_ZERO) && (col < P_RW);
            end
            assign pix_last = (b == B_LAST);
            genvar gi;
            for (gi = 0; gi < TAPS; gi = gi + 1) begin : g_tap
                reg [AW-1:0] base, col;
                reg ok;
                reg [WB-1:0] rq;
                integer nb, t, tky, tkx;
                always @* begin
                    base = {AW{1'b0}};
                    col = {AW{1'b0}};
                    ok = 1'b0;
                    for (nb = 0; nb < NB; nb = nb + 1) begin
                        t = nb * TAPS + gi;
                        tky = t / KW;
                        tkx = t - tky * KW;
                        if (b == nb[BB-1:0]) begin
                            base = bases[tky*AW +: AW];
                            col = cols[tkx*PB +: AW];
                            ok = row_ok[tky] && col_ok[tkx];
                        end
                    end
                end
                assign pad_now[gi] = !ok;
                assign q[gi*WB +: WB] = rq;
                always @(posedge clk) begin
                    if (adv) rq <= mem[base + col];
                end
            end
            always @(posedge clk) begin
                if (!rst_n) b <= {BB{1'b0}};
                else if (issue) b <= pix_last ? {BB{1'b0}} : b + 1'b1;
            end
        end
    endgenerate

    // ---------------------------------------------------------------- output register
    wire [TAPS*ELEMS*OBITS-1:0] shaped;
    genvar ge;
    generate
        for (ge = 0; ge < TAPS*ELEMS; ge = ge + 1) begin : g_elem
            wire pad_e = pad1[ge / ELEMS];
            if (IN_BIPOLAR != 0) begin : g_bip
                wire bit_e = q[ge];
                assign shaped[ge*OBITS +: OBITS] = pad_e ? {OBITS{1'b0}}
                    : bit_e ? {{(OBITS-1){1'b0}}, 1'b1} : {OBITS{1'b1}};
            end else begin : g_raw
                assign shaped[ge*OBITS +: OBITS] = pad_e ? {OBITS{1'b0}}
                                                         : q[ge*EBITS +: EBITS];
            end
        end
    endgenerate

    always @(posedge clk) begin
        if (adv) begin
            pad1 <= pad_now;
            m_data <= shaped;
        end
    end

    assign m_axis_tdata = m_data;
    assign m_axis_tvalid = m_valid;
endmodule

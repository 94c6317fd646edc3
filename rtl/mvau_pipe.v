`timescale 1ns/1ps
// mvau_pipe: pipelined streaming matrix-vector(-threshold) unit, FINN's MVAU/VVAU in spirit.
//
// What. Per frame (one input vector; for a convolution one output pixel's patch) an integer
// matrix-vector product, then either the multi-threshold activation
//   out[c] = OFFSET + #{k : acc[c] >= T[c][k]}   (NUM_T > 0; signed ACC_BITS compares,
//                                                 truncated to OUT_BITS, two's complement)
// or the accumulator itself plus an integer bias when HAS_BIAS (NUM_T == 0, OUT_BITS must
// equal ACC_BITS). Arithmetic is two's complement modulo 2^ACC_BITS: ACC_BITS holds every
// final accumulator and threshold, partial sums may wrap.
//
// Parameters.
//   MW, MH        inputs and outputs per frame (DEPTHWISE: MW = K*MH, K taps per channel).
//   PE, SIMD      outputs per output beat (and per step); inputs per step. NF = MH/PE.
//   DEPTHWISE=0   dense: SF = MW/SIMD input beats of SIMD elements per frame;
//                 acc[r] = sum_j x[j]*W[r][j]; weight word nf*SF + sf holds
//                 W[nf*PE + p][sf*SIMD + s] at element p*SIMD + s.
//   DEPTHWISE=1   vector unit (VVAU), SIMD must be 1: K*NF input beats of PE elements, beat
//                 k*NF + nf = channels nf*PE + p of tap k; acc[c] = sum_k x[k][c]*w[c][k];
//                 weight word nf*K + k holds w[nf*PE + p][k] at element p.
//   XNOR=1        binarized dense layer (IN_BITS = W_BITS = 1, IN_BIPOLAR = W_BIPOLAR = 1,
//                 DEPTHWISE = 0): XNOR gates and a popcount tree, acc = number of matching
//                 signs (0..MW), compared with thresholds rewritten for it; with NUM_T == 0
//                 the output is 2*acc (+ bias).
//   IN_BITS, IN_SIGNED, IN_BIPOLAR   input elements: unsigned, two's complement, or 1-bit
//                 bipolar (1 -> +1, 0 -> -1). W_BITS, W_BIPOLAR: weights, two's complement
//                 or 1-bit bipolar.
//   LUT_MUL       1: each product from shifted adds (keeps narrow products out of DSPs):
//                 one partial product per weight bit (the top one subtracted), added in
//                 pairs (x times a two-bit digit, one adder), the pair sums in a balanced
//                 tree; 0: `*`. A bipolar operand is a conditional negation either way.
//   TREE_STAGES=1 registered stages (>= 1) of S1 for the adder tree, and for the products
//                 too unless they have their own (PROD_REG); each stage beyond the first
//                 adds one cycle of latency, none of throughput.
//   PROD_REG=-1   1: the products get a registered stage of their own in front of the
//                 TREE_STAGES stages (one more cycle of latency, PE*SIMD product registers);
//                 0: they are level 0 of the first tree stage; -1 (auto, what the
//                 generator uses): 1 exactly when they are shifted adds of more than two
//                 weight bits (LUT_MUL = 1, W_BITS > 2, no bipolar operand, XNOR = 0). Such
//                 a product is two adder levels deep by itself, so with it in a stage of
//                 its own every tree stage of two levels (what the generator plans per
//                 stage) stays about as deep as the product. PR below: the value used.
//   ACC_BITS, NUM_T, OUT_BITS, OFFSET, HAS_BIAS   as above.
//   WA_BITS, TA_BITS   address widths of the weight ROM (NF*SF words; DEPTHWISE NF*K) and
//                 of the threshold/bias ROM (NF words).
// Formats (element 0 at the LSBs everywhere). Output: NF beats per frame, beat nf = rows
// nf*PE + p at element p, OUT_BITS each. Threshold word nf: T[nf*PE + p][k] at element
// p*NUM_T + k, ACC_BITS two's complement; bias word nf: bias[nf*PE + p] at element p.
// ROM ports: w_en/w_addr -> w_data, t_en/t_addr -> t_data are registered reads
// (data = mem[addr] one clock after en, as hw_gen.verilog.rom.rom_module) whose data hold
// while en is low. With NUM_T == 0 and no bias t_en stays low and t_data is ignored.
//
// Pipeline. A step is one output group nf times one input beat sf (DEPTHWISE: tap k):
// PE x SIMD products. SFI = SF (DEPTHWISE: K) steps make one group of PE results.
//   S0 issue  step counters; synchronous reads of the input buffer and the weight ROM.
//   S1 dot    products (XNOR bits) and a balanced adder (popcount) tree of TL = ceil(log2 SIMD)
//             levels, node widths exact and capped at ACC_BITS; its sum is registered.
//             S1 is PR + TREE_STAGES registered stages (PR = PROD_REG resolved, 0 or 1). The
//             products count as level 0, so the tree has levels 0..TL. With PR = 1 level 0
//             is a stage of its own (the product register) and the TREE_STAGES stages share
//             levels 1..TL, otherwise they share levels 0..TL: NL = TL + 1 - PR levels; with
//             TSL = min(TREE_STAGES, max(NL, 1)), Q = max(NL, 1) / TSL, R = max(NL, 1) % TSL
//             (integer), the first R stages compute Q + 1 consecutive levels and the others
//             Q (the extra levels go first: early levels are narrower, and a cut deeper in
//             the tree registers fewer nodes). A stage ends in a register of all the nodes
//             of its last level; the last one's is the sum (NL = 0, i.e. PR = 1 and SIMD = 1:
//             a plain register of the product register). TREE_STAGES > TSL: the
//             TREE_STAGES - TSL stages beyond the tree are plain registers of the sum. A
//             step's tags (valid, first / last step of its group) follow it through these
//             stages in shift registers under the same enable adv.
//   S2 acc    accumulator (the first step of a group loads, the others add); the last
//             step of a group also reads the threshold/bias ROM (t_en).
//   S3 thr    the NUM_T comparisons of each result registered (NUM_T == 0: acc + bias).
//   S4 out    count of the comparison bits (a small adder tree) + OFFSET into the output
//             register (NUM_T == 0: the S3 value), m_axis_tdata.
// Input: a two-frame (ping-pong) buffer with one write port and one synchronous read port
// with enable, no reset (block RAM for large frames). A frame is accepted while the
// previous one is computed; its computation starts the cycle after its last beat arrived.
//
// Stalls: one global pipeline enable, adv = !m_axis_tvalid || m_axis_tready. Every stage
// register, the buffer read and both ROM reads (en) advance only with adv, so a stall
// freezes the whole pipeline, ROM outputs included, and nothing is lost or duplicated;
// bubbles travel as cleared valid bits. The input side does not stall with it:
// s_axis_tready = "the half being written is free" (registered state only). Chosen over
// credits + an output FIFO: no extra storage; the cost is the fan-out of m_axis_tready
// (through one gate) to the clock enables.
//
// Throughput (input always valid, output always ready): one step per cycle, a frame every
// NF*SFI cycles (NF*SF dense, NF*K depthwise); with NF*SFI == 1 one frame per cycle.
// Latency (idle unit): the first output beat of a frame is on m_axis (tvalid high)
// SFI + PR + TREE_STAGES + 3 cycles after the clock edge that accepted the frame's last input
// beat (SFI issue cycles, PR + TREE_STAGES for S1, then S2..S4), and is taken at the edge
// after that (SFI + PR + TREE_STAGES + 4 edges, as the bench checks). TREE_STAGES = 1 and no
// product register: SFI + 4 and SFI + 5.
module mvau_pipe #(
    parameter integer MW = 8,
    parameter integer MH = 8,
    parameter integer PE = 1,
    parameter integer SIMD = 1,
    parameter integer DEPTHWISE = 0,
    parameter integer XNOR = 0,
    parameter integer IN_BITS = 2,
    parameter integer IN_SIGNED = 0,
    parameter integer IN_BIPOLAR = 0,
    parameter integer W_BITS = 2,
    parameter integer W_BIPOLAR = 0,
    parameter integer ACC_BITS = 16,
    parameter integer NUM_T = 3,
    parameter integer OUT_BITS = 2,
    parameter integer OFFSET = 0,
    parameter integer HAS_BIAS = 0,
    parameter integer LUT_MUL = 1,
    parameter integer TREE_STAGES = 1,
    parameter integer PROD_REG = -1,
    parameter integer WA_BITS = 8,
    parameter integer TA_BITS = 8
) (
    input  wire                                       clk,
    input  wire                                       rst_n,
    input  wire [((DEPTHWISE != 0) ? PE : SIMD)*IN_BITS-1:0] s_axis_tdata,
    input  wire                                       s_axis_tvalid,
    output wire                                       s_axis_tready,
    output wire [PE*OUT_BITS-1:0]                     m_axis_tdata,
    output wire                                       m_axis_tvalid,
    input  wire                                       m_axis_tready,
    output wire                                       w_en,
    output wire [WA_BITS-1:0]                         w_addr,
    input  wire [PE*SIMD*W_BITS-1:0]                  w_data,
    output wire                                       t_en,
    output wire [TA_BITS-1:0]                         t_addr,
    input  wire [PE*(NUM_T > 0 ? NUM_T : 1)*ACC_BITS-1:0] t_data
);
    localparam integer NT = (NUM_T > 0) ? NUM_T : 1;
    localparam integer NF = MH / PE;
    localparam integer SFI = (DEPTHWISE != 0) ? MW / MH : MW / SIMD;  // steps per group
    localparam integer XE = (DEPTHWISE != 0) ? PE : SIMD;             // elements per beat
    localparam integer XW = XE * IN_BITS;                             // input beat width
    localparam integer IB = (DEPTHWISE != 0) ? MW / PE : MW / SIMD;   // beats per frame
    localparam integer STRIDE = (DEPTHWISE != 0) ? NF : 1;            // buffer step per step
    localparam integer RB = $clog2(2 * IB);                           // buffer address width
    localparam integer SFB = (SFI > 1) ? $clog2(SFI) : 1;
    localparam integer NFB = (NF > 1) ? $clog2(NF) : 1;
    // accumulator register width: 2*acc (XNOR without thresholds) needs acc mod 2^(ACC-1)
    localparam integer AW = ((XNOR != 0) && NUM_T == 0) ? ACC_BITS - 1 : ACC_BITS;
    // one product: the input's signed width and the exact product width
    localparam integer XB = (IN_SIGNED != 0) ? IN_BITS : IN_BITS + 1;
    localparam integer PB = ((IN_BIPOLAR != 0) && (W_BIPOLAR != 0)) ? 2 :
                            (W_BIPOLAR != 0) ? IN_BITS + 1 :
                            (IN_BIPOLAR != 0) ? W_BITS + 1 : IN_BITS + W_BITS;
    localparam integer LW = (XNOR != 0) ? 1 : PB;       // tree leaf width
    localparam integer LC = (LW < AW) ? LW : AW;        // leaf width kept (mod 2^AW)
    localparam integer TL = (SIMD > 1) ? $clog2(SIMD) : 0;  // adder tree levels
    // products as shifted adds of more than two weight bits: two adder levels deep
    localparam integer MULS = ((XNOR == 0) && (IN_BIPOLAR == 0) && (W_BIPOLAR == 0)
                               && (LUT_MUL != 0) && (W_BITS > 2)) ? 1 : 0;
    localparam integer PR = (PROD_REG < 0) ? MULS : (PROD_REG > 0) ? 1 : 0;
    localparam integer SD = PR + TREE_STAGES;           // S1 stages
    localparam integer NL = TL + 1 - PR;                // levels in the tree stages (from PR)
    localparam integer NLS = (NL > 0) ? NL : 1;
    localparam integer TSL = (TREE_STAGES < NLS) ? TREE_STAGES : NLS;  // stages with levels
    localparam integer TX = TREE_STAGES - TSL;          // plain register stages after them
    localparam integer TQ = NLS / TSL;                  // levels per tree stage: TQ + 1 in
    localparam integer TR = NLS % TSL;                  // the first TR stages, TQ in the rest
    localparam integer TB = TR * (TQ + 1);              // first level (- PR) of stage TR
    localparam integer NPP = (W_BITS + 1) / 2;          // LUT_MUL: partial products pairs
    localparam [0:0] TS = (XNOR != 0) ? 1'b0 : 1'b1;    // the adder tree is signed
    localparam integer CL = (NT > 1) ? $clog2(NT) : 0;  // count tree levels
    // sized constants
    localparam integer SF_M1 = SFI - 1;
    localparam integer NF_M1 = NF - 1;
    localparam integer IB_M1 = IB - 1;
    localparam integer IB2_M1 = 2 * IB - 1;
    localparam integer BACK = (SFI - 1) * STRIDE - DEPTHWISE;  // end of a group -> next
    localparam [SFB-1:0] SF_LAST = SF_M1[SFB-1:0];
    localparam [NFB-1:0] NF_LAST = NF_M1[NFB-1:0];
    localparam [RB-1:0] R_HALF = IB_M1[RB-1:0];
    localparam [RB-1:0] R_END = IB2_M1[RB-1:0];
    localparam [RB-1:0] R_STEP = STRIDE[RB-1:0];
    localparam [RB-1:0] R_BACK = BACK[RB-1:0];
    localparam [TA_BITS-1:0] T_LAST = NF_M1[TA_BITS-1:0];
    localparam [OUT_BITS-1:0] OFF = OFFSET[OUT_BITS-1:0];

    // ------------------------------------------------------------------ input ping-pong
    reg [XW-1:0] ibuf [0:2*IB-1];
    reg [XW-1:0] x_q;
    reg [1:0]    full;
    reg          wsel, rsel;
    reg [RB-1:0] waddr, raddr;
    wire in_fire = s_axis_tvalid && !full[wsel];
    wire w_last = (waddr == (wsel ? R_END : R_HALF));
    assign s_axis_tready = !full[wsel];

    // ------------------------------------------------------------------ control
    reg [SFB-1:0]     sf;
    reg [NFB-1:0]     nf;
    reg [WA_BITS-1:0] wa;
    reg v1, v2, v3, v4, m_valid;
    reg f1, l1, f2, l2;                 // first / last step of a group, per stage
    wire v1t, f1t, l1t;                 // v1, f1, l1 delayed PR + TREE_STAGES - 1 cycles
    wire [PE*OUT_BITS-1:0] m_data;     // the PEs' output registers
    wire adv = !m_valid || m_axis_tready;
    wire issue = adv && full[rsel];
    wire last_sf = (sf == SF_LAST);
    wire last_nf = (nf == NF_LAST);
    wire frame_in = in_fire && w_last;                  // last beat of a frame written
    wire frame_done = issue && last_sf && last_nf;      // last step of a frame issued

    assign w_en = issue;
    assign w_addr = wa;

    always @(posedge clk) begin
        if (in_fire) ibuf[waddr] <= s_axis_tdata;
        if (issue) x_q <= ibuf[raddr];
    end

    always @(posedge clk) begin
        if (adv) begin
            f1 <= (sf == {SFB{1'b0}});
            l1 <= last_sf;
            f2 <= f1t;
            l2 <= l1t;
        end
    end

    always @(posedge clk) begin
        if (!rst_n) begin
            full <= 2'b00;
            wsel <= 1'b0;
            rsel <= 1'b0;
            waddr <= {RB{1'b0}};
            raddr <= {RB{1'b0}};
            sf <= {SFB{1'b0}};
            nf <= {NFB{1'b0}};
            wa <= {WA_BITS{1'b0}};
            v1 <= 1'b0;
            v2 <= 1'b0;
            v3 <= 1'b0;
            v4 <= 1'b0;
            m_valid <= 1'b0;
        end else begin
            // a half fills (write side) / empties (read side); never the same half at once
            full <= (full | ({wsel, !wsel} & {2{frame_in}}))
                  & ~({rsel, !rsel} & {2{frame_done}});
            if (in_fire) begin
                waddr <= (waddr == R_END) ? {RB{1'b0}} : waddr + 1'b1;
                if (w_last) wsel <= !wsel;
            end
            if (issue) begin
                if (!last_sf) begin
                    sf <= sf + 1'b1;
                    raddr <= raddr + R_STEP;
                    wa <= wa + 1'b1;
                end else if (!last_nf) begin
                    sf <= {SFB{1'b0}};
                    nf <= nf + 1'b1;
                    raddr <= raddr - R_BACK;
                    wa <= wa + 1'b1;
                end else begin
                    sf <= {SFB{1'b0}};
                    nf <= {NFB{1'b0}};
                    raddr <= (raddr == R_END) ? {RB{1'b0}} : raddr + 1'b1;
                    wa <= {WA_BITS{1'b0}};
                    rsel <= !rsel;
                end
            end
            if (adv) begin
                v1 <= full[rsel];
                v2 <= v1t;
                v3 <= v2 && l2;
                v4 <= v3;
                m_valid <= v4;
            end
        end
    end

    // tags through the extra S1 stages (S1 is SD = PR + TREE_STAGES stages; v2, f2, l2
    // follow it)
    generate
        if (SD > 1) begin : g_tag
            reg  [SD-2:0] vt, ft, lt;
            wire [SD-1:0] vn = {vt, v1};
            wire [SD-1:0] fn = {ft, f1};
            wire [SD-1:0] ln = {lt, l1};
            always @(posedge clk) begin
                if (!rst_n) vt <= {(SD-1){1'b0}};
                else if (adv) vt <= vn[SD-2:0];
            end
            always @(posedge clk) begin
                if (adv) begin
                    ft <= fn[SD-2:0];
                    lt <= ln[SD-2:0];
                end
            end
            assign v1t = vn[SD-1];
            assign f1t = fn[SD-1];
            assign l1t = ln[SD-1];
        end else begin : g_tag1
            assign v1t = v1;
            assign f1t = f1;
            assign l1t = l1;
        end
    endgenerate

    // ------------------------------------------------------------------ threshold ROM read
    generate
        if (NUM_T > 0 || (HAS_BIAS != 0)) begin : g_tread
            reg [TA_BITS-1:0] tn;
            wire t_read = adv && v2 && l2;      // a finished accumulator enters S3 next
            always @(posedge clk) begin
                if (!rst_n) tn <= {TA_BITS{1'b0}};
                else if (t_read) tn <= (tn == T_LAST) ? {TA_BITS{1'b0}} : tn + 1'b1;
            end
            assign t_en = t_read;
            assign t_addr = tn;
        end else begin : g_tnone
            wire unused_t = ^t_data;
            assign t_en = 1'b0;
            assign t_addr = {TA_BITS{1'b0}};
        end
    endgenerate

    // LUT_MUL product of a PB-bit signed x and a W_BITS-bit two's complement w, mod 2^PB:
    // one partial product per weight bit (the top one subtracted), added in pairs (one
    // adder each: x times a two-bit digit), then the pairs' sums in a balanced tree
    function automatic [PB-1:0] lut_mul(input [PB-1:0] x, input [W_BITS-1:0] w);
        reg [NPP*PB-1:0] v;
        reg [PB-1:0] a, b;
        integer i, n;
        begin
            for (i = 0; i < NPP; i = i + 1) begin
                a = w[2*i] ? x << (2*i) : {PB{1'b0}};
                if (2*i + 1 < W_BITS) begin
                    b = w[2*i+1] ? x << (2*i+1) : {PB{1'b0}};
                    if (2*i + 1 == W_BITS - 1) v[i*PB +: PB] = a - b;
                    else v[i*PB +: PB] = a + b;
                end else begin
                    v[i*PB +: PB] = {PB{1'b0}} - a;     // the top bit alone (W_BITS odd)
                end
            end
            for (n = NPP; n > 1; n = (n + 1) / 2) begin
                for (i = 0; i < n / 2; i = i + 1)
                    v[i*PB +: PB] = v[2*i*PB +: PB] + v[(2*i+1)*PB +: PB];
                if (n % 2 == 1) v[(n/2)*PB +: PB] = v[(n-1)*PB +: PB];
            end
            lut_mul = v[PB-1:0];
        end
    endfunction

    // ------------------------------------------------------------------ one PE per block
    genvar gp, gs, gl, gn;
    generate
        for (gp = 0; gp < PE; gp = gp + 1) begin : g_pe
            // S1: SIMD leaves (products / XNOR bits), LC bits each
            wire [SIMD*LC-1:0] leaf;
            for (gs = 0; gs < SIMD; gs = gs + 1) begin : g_leaf
                wire [IN_BITS-1:0] xe = x_q[((DEPTHWISE != 0) ? gp : gs)*IN_BITS +: IN_BITS];
                wire [W_BITS-1:0]  we = w_data[(gp*SIMD + gs)*W_BITS +: W_BITS];
                wire [LW-1:0] p;
                if (XNOR != 0) begin : g_xnor
                    assign p = ~(xe ^ we);
                end else if ((IN_BIPOLAR != 0) && (W_BIPOLAR != 0)) begin : g_pm1
                    assign p = {xe ^ we, 1'b1};              // +1 = 01, -1 = 11
                end else if (W_BIPOLAR != 0) begin : g_wpm1
                    wire [PB-1:0] xs;
                    if (IN_SIGNED != 0) begin : g_s
                        assign xs = {xe[IN_BITS-1], xe};
                    end else begin : g_u
                        assign xs = {1'b0, xe};
                    end
                    assign p = we[0] ? xs : -xs;
                end else if (IN_BIPOLAR != 0) begin : g_xpm1
                    wire [PB-1:0] ws = {we[W_BITS-1], we};
                    assign p = xe[0] ? ws : -ws;
                end else begin : g_mul
                    // x widened to PB bits, signed (PB > XB always here)
                    wire [XB-1:0] xv;
                    if (IN_SIGNED != 0) begin : g_s
                        assign xv = xe;
                    end else begin : g_u
                        assign xv = {1'b0, xe};
                    end
                    wire [PB-1:0] xs = {{(PB-XB){xv[XB-1]}}, xv};
                    if (LUT_MUL != 0) begin : g_lut
                        assign p = lut_mul(xs, we);
                    end else begin : g_star
                        wire [PB-1:0] ws = {{(PB-W_BITS){we[W_BITS-1]}}, we};
                        assign p = $signed(xs) * $signed(ws);
                    end
                end
                if (LC < LW) begin : g_trunc
                    // accumulator narrower than one product: its top bits vanish mod 2^AW
                    /* verilator lint_off UNUSEDSIGNAL */
                    wire [LW-1:0] p_all = p;
                    /* verilator lint_on UNUSEDSIGNAL */
                    assign leaf[gs*LC +: LC] = p_all[LC-1:0];
                end else begin : g_keep
                    assign leaf[gs*LC +: LC] = p;
                end
            end
            // balanced tree: level gl has ceil(SIMD/2^gl) nodes of min(LC+gl, AW) bits
            for (gl = 0; gl <= TL; gl = gl + 1) begin : g_lvl
                localparam integer NW = (LC + gl < AW) ? LC + gl : AW;
                localparam integer NN = (SIMD + (1 << gl) - 1) >> gl;
                wire [NN*NW-1:0] v;
                if (gl == 0) begin : g_in
                    assign v = leaf;
                end else begin : g_add
                    localparam integer PW = (LC + gl - 1 < AW) ? LC + gl - 1 : AW;
                    localparam integer NP = (SIMD + (1 << (gl - 1)) - 1) >> (gl - 1);
                    for (gn = 0; gn < NN; gn = gn + 1) begin : g_node
                        wire [PW-1:0] a = g_lvl[gl-1].q[2*gn*PW +: PW];
                        wire [NW-1:0] ax, bx;
                        if (NW > PW) begin : g_ext
                            assign ax = {TS & a[PW-1], a};
                        end else begin : g_same
                            assign ax = a;
                        end
                        if (2*gn + 1 < NP) begin : g_two
                            wire [PW-1:0] b = g_lvl[gl-1].q[(2*gn+1)*PW +: PW];
                            if (NW > PW) begin : g_ext
                                assign bx = {TS & b[PW-1], b};
                            end else begin : g_same
                                assign bx = b;
                            end
                        end else begin : g_one
                            assign bx = {NW{1'b0}};
                        end
                        assign v[gn*NW +: NW] = ax + bx;
                    end
                end
                // a stage register after this level when the next one is in the next stage
                // (the first TR stages hold TQ + 1 levels, the others TQ, counted from level
                // PR; see the header), and after the products when PR = 1
                localparam integer GL = gl - PR;
                localparam integer ST = (GL < TB) ? GL / (TQ + 1) : TR + (GL - TB) / TQ;
                localparam integer SN = (GL + 1 < TB) ? (GL + 1) / (TQ + 1)
                                                      : TR + (GL + 1 - TB) / TQ;
                wire [NN*NW-1:0] q;           // the level as the next one sees it
                if (GL < 0 || (gl < TL && SN != ST)) begin : g_cut
                    reg [NN*NW-1:0] r;        // a tree stage register
                    always @(posedge clk) begin
                        if (adv) r <= v;
                    end
                    assign q = r;
                end else begin : g_comb
                    assign q = v;
                end
            end
            localparam integer DW = (LC + TL < AW) ? LC + TL : AW;
            reg [DW-1:0] dot;                 // the sum: register of tree stage TSL
            reg [AW-1:0] acc;                 // S2 register
            wire [DW-1:0] dot_o;              // S1 output: dot after the TX plain stages
            wire [AW-1:0] dot_x;
            if (TX > 0) begin : g_xtra
                reg  [TX*DW-1:0] dq;
                wire [(TX+1)*DW-1:0] dn = {dq, dot};
                always @(posedge clk) begin
                    if (adv) dq <= dn[TX*DW-1:0];
                end
                assign dot_o = dn[TX*DW +: DW];
            end else begin : g_xnone
                assign dot_o = dot;
            end
            if (DW < AW) begin : g_dext
                assign dot_x = {{(AW-DW){TS & dot_o[DW-1]}}, dot_o};
            end else begin : g_dsame
                assign dot_x = dot_o;
            end
            always @(posedge clk) begin
                if (adv) dot <= g_lvl[TL].q;
                if (adv && v2) acc <= f2 ? dot_x : acc + dot_x;
            end

            // S3 + S4
            if (NUM_T > 0) begin : g_thr
                reg [NT-1:0] cmp;
                integer k;
                always @(posedge clk) begin
                    if (adv)
                        for (k = 0; k < NT; k = k + 1)
                            cmp[k] <= $signed(acc) >= $signed(t_data[(gp*NT + k)*ACC_BITS +: ACC_BITS]);
                end
                // count tree: level gl has ceil(NT/2^gl) nodes of min(1+gl, OUT_BITS) bits
                for (gl = 0; gl <= CL; gl = gl + 1) begin : g_cnt
                    localparam integer NW = (1 + gl < OUT_BITS) ? 1 + gl : OUT_BITS;
                    localparam integer NN = (NT + (1 << gl) - 1) >> gl;
                    wire [NN*NW-1:0] v;
                    if (gl == 0) begin : g_in
                        assign v = cmp;
                    end else begin : g_add
                        localparam integer PW = (gl < OUT_BITS) ? gl : OUT_BITS;
                        localparam integer NP = (NT + (1 << (gl - 1)) - 1) >> (gl - 1);
                        for (gn = 0; gn < NN; gn = gn + 1) begin : g_node
                            wire [PW-1:0] a = g_cnt[gl-1].v[2*gn*PW +: PW];
                            wire [NW-1:0] ax, bx;
                            if (NW > PW) begin : g_ext
                                assign ax = {1'b0, a};
                            end else begin : g_same
                                assign ax = a;
                            end
                            if (2*gn + 1 < NP) begin : g_two
                                wire [PW-1:0] b = g_cnt[gl-1].v[(2*gn+1)*PW +: PW];
                                if (NW > PW) begin : g_ext
                                    assign bx = {1'b0, b};
                                end else begin : g_same
                                    assign bx = b;
                                end
                            end else begin : g_one
                                assign bx = {NW{1'b0}};
                            end
                            assign v[gn*NW +: NW] = ax + bx;
                        end
                    end
                end
                localparam integer CW = (1 + CL < OUT_BITS) ? 1 + CL : OUT_BITS;
                wire [OUT_BITS-1:0] count;
                if (CW < OUT_BITS) begin : g_cext
                    assign count = {{(OUT_BITS-CW){1'b0}}, g_cnt[CL].v};
                end else begin : g_csame
                    assign count = g_cnt[CL].v;
                end
                reg [OUT_BITS-1:0] o;
                always @(posedge clk) begin
                    if (adv) o <= count + OFF;
                end
                assign m_data[gp*OUT_BITS +: OUT_BITS] = o;
            end else begin : g_acc
                reg [ACC_BITS-1:0] res;
                reg [OUT_BITS-1:0] o;
                wire [ACC_BITS-1:0] val, sum;
                if (XNOR != 0) begin : g_twice
                    assign val = {acc, 1'b0};
                end else begin : g_once
                    assign val = acc;
                end
                if (HAS_BIAS != 0) begin : g_bias
                    assign sum = val + t_data[gp*ACC_BITS +: ACC_BITS];
                end else begin : g_nobias
                    assign sum = val;
                end
                always @(posedge clk) begin
                    if (adv) begin
                        res <= sum;
                        o <= res;
                    end
                end
                assign m_data[gp*OUT_BITS +: OUT_BITS] = o;
            end
        end
    endgenerate

    assign m_axis_tdata = m_data;
    assign m_axis_tvalid = m_valid;
endmodule

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
// D itself is not stored: two registers hold D - (hi - lo) and D - ROWS, so each side's
// test is one sign bit, and step by +1 per row written and by per-output-row constants
// (tables over oy, built at elaboration) when the reader leaves an output row.
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
// Pipeline (one enable, adv = !m_axis_tvalid || m_axis_tready): read stage (the memory
// read at the sum of two counters, slot base + word column, and the padding flag from
// per-row and per-column tables), output register (padding / bipolar widening). The read
// happens in the cycle the beat is issued, so the writer may overwrite a row from the next
// cycle on. Positions are counters with registered end-of-count flags (no multiply,
// divide or compare of positions in the issue logic).
//
// Memory mapping: word address = slot*RW + x*CW + w (slot = global row mod ROWS, pixel
// column x, word w of the pixel); the writer's address is one counter modulo ROWS*RW.
// TAPS == 1: one write port and ONE synchronous read port with enable
// (`if (adv) rq <= mem[raddr]`, no reset on mem or rq), so synthesis infers block RAM (ROWS*RW words of ELEMS*EBITS bits; e.g. Yosys
// synth_xilinx maps 32x32x16, ELEMS 4, EBITS 4, ROWS 4 to one RAMB18E1); padding is a
// registered flag muxed after rq into the output register. TAPS > 1: TAPS synchronous reads per cycle of the same array
// (slot base per tap row and word column per tap column kept as counters, padding per tap
// row and column from the tables, each tap picks its pair by the beat index), which maps
// to multi-port LUT RAM or registers: meant for small images only (ROWS*W*C*EBITS bits).
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
    // two's complement width of D - (rows needed) (in [-H-KH, ROWS]), D - ROWS (in
    // [-H-ROWS, 0]) and their steps (at most H + KH + 1): |value| < MAXV, no wrap
    localparam integer MAXV = 2 * H + ROWS + KH + 4;
    localparam integer PB = $clog2(MAXV) + 2;
    localparam integer OYB = (OH > 1) ? $clog2(OH) : 1;
    localparam integer OXB = (OW > 1) ? $clog2(OW) : 1;
    localparam integer KYB = (KH > 1) ? $clog2(KH) : 1;
    localparam integer KXB = (KW > 1) ? $clog2(KW) : 1;
    localparam integer CWB = (CW > 1) ? $clog2(CW) : 1;
    localparam integer WCB = (RW > 1) ? $clog2(RW) : 1;
    localparam integer KYP = 1 << KYB;          // padding flags per row / column in the
    localparam integer KXP = 1 << KXB;          // tables (a power of two: any index is in)
    // ring offsets (slots): of the virtual top row of output row 0 of frame 0, step per
    // output row, step from the last output row of a frame to row 0 of the next
    localparam integer T0 = ((-PH % ROWS) + ROWS) % ROWS;
    localparam integer SHM = SH % ROWS;
    localparam integer FJM = (((H - (OH - 1) * SH) % ROWS) + ROWS) % ROWS;

    // sized constants (integers sliced to width, so every expression is width-exact)
    localparam integer I_ONE = 1, I_ZERO = 0;
    localparam integer I_ER0 = -((KH - PH < H) ? KH - PH : H), I_EW0 = -ROWS;
    localparam integer I_NPW = -(PW * CW), I_SWCW = SW * CW, I_AT0 = T0 * RW;
    localparam integer I_RW = RW, I_ASHM = SHM * RW, I_AFJM = FJM * RW;
    localparam integer I_RWD = RW - DEPTH, I_ASHMD = SHM * RW - DEPTH;
    localparam integer I_AFJMD = FJM * RW - DEPTH;
    localparam integer I_OYP = OH - 2, I_OXP = OW - 2, I_KYP = KH - 2, I_KXP = KW - 2;
    localparam integer I_CWP = CW - 2, I_WAP = DEPTH - 2, I_WCP = RW - 2;
    localparam [PB-1:0] P_ER0 = I_ER0[PB-1:0], P_EW0 = I_EW0[PB-1:0];
    localparam [PB-1:0] P_ONE = I_ONE[PB-1:0], P_ZERO = I_ZERO[PB-1:0];
    localparam [AW-1:0] A_NPW = I_NPW[AW-1:0], A_SWCW = I_SWCW[AW-1:0], A_T0 = I_AT0[AW-1:0];
    localparam [AW-1:0] A_RW = I_RW[AW-1:0];
    localparam [AW+1:0] A2_RWD = I_RWD[AW+1:0];
    localparam [AW-1:0] A_SHM = I_ASHM[AW-1:0], A_FJM = I_AFJM[AW-1:0];
    localparam [AW+1:0] A2_SHMD = I_ASHMD[AW+1:0];
    localparam [AW+1:0] A2_FJMD = I_AFJMD[AW+1:0];
    localparam [OYB-1:0] OY_PEN = I_OYP[OYB-1:0];
    localparam [OXB-1:0] OX_PEN = I_OXP[OXB-1:0];
    localparam [KYB-1:0] KY_PEN = I_KYP[KYB-1:0];
    localparam [KXB-1:0] KX_PEN = I_KXP[KXB-1:0];
    localparam [CWB-1:0] CW_PEN = I_CWP[CWB-1:0];
    localparam [AW-1:0] WA_PEN = I_WAP[AW-1:0];
    localparam [WCB-1:0] WC_PEN = I_WCP[WCB-1:0];
    localparam [0:0] OH1 = (OH == 1) ? 1'b1 : 1'b0, OW1 = (OW == 1) ? 1'b1 : 1'b0;
    localparam [0:0] KH1 = (KH == 1) ? 1'b1 : 1'b0, KW1 = (KW == 1) ? 1'b1 : 1'b0;
    localparam [0:0] CW1 = (CW == 1) ? 1'b1 : 1'b0, RW1 = (RW == 1) ? 1'b1 : 1'b0;
    localparam [0:0] DEPTH1 = (DEPTH == 1) ? 1'b1 : 1'b0;

    // per output row oy (PB bits each): which = 0: -(hi(next) - hi(oy)), 1: 1 + that;
    // 2: -(lo(next) - lo(oy)), 3: 1 + that (rows [lo, hi) needed, next = the next output
    // row, after the last one row 0 of the next frame: H + lo(0), H + hi(0))
    function [OH*PB-1:0] step_tab(input integer which);
        integer r, t, lo, hi, lon, hin, s, v, k;
        begin
            step_tab = {(OH*PB){1'b0}};
            for (r = 0; r < OH; r = r + 1) begin
                t = r * SH - PH;
                lo = (t < 0) ? 0 : t;
                hi = (t + KH > H) ? H : t + KH;
                t = (r < OH - 1) ? t + SH : -PH;
                lon = ((t < 0) ? 0 : t) + ((r < OH - 1) ? 0 : H);
                hin = ((t + KH > H) ? H : t + KH) + ((r < OH - 1) ? 0 : H);
                s = (which < 2) ? hin - hi : lon - lo;
                v = (which % 2) - s;
                for (k = 0; k < PB; k = k + 1) step_tab[r*PB + k] = v[k];
            end
        end
    endfunction
    // per output row oy (KYP bits): tap row ky is an image row (not padding), pad = PH
    function [OH*KYP-1:0] rowok_tab(input integer pad);
        integer r, k, t;
        begin
            rowok_tab = {(OH*KYP){1'b0}};
            for (r = 0; r < OH; r = r + 1)
                for (k = 0; k < KH; k = k + 1) begin
                    t = r * SH - pad + k;
                    rowok_tab[r*KYP + k] = (t >= 0) && (t < H);
                end
        end
    endfunction
    // per output column ox (KXP bits): tap column kx is an image column, pad = PW
    function [OW*KXP-1:0] colok_tab(input integer pad);
        integer r, k, t;
        begin
            colok_tab = {(OW*KXP){1'b0}};
            for (r = 0; r < OW; r = r + 1)
                for (k = 0; k < KW; k = k + 1) begin
                    t = r * SW - pad + k;
                    colok_tab[r*KXP + k] = (t >= 0) && (t < W);
                end
        end
    endfunction
    localparam [OH*PB-1:0] T_NH0 = step_tab(0), T_NH1 = step_tab(1);
    localparam [OH*PB-1:0] T_NL0 = step_tab(2), T_NL1 = step_tab(3);
    localparam [OH*KYP-1:0] T_ROWOK = rowok_tab(PH);
    localparam [OW*KXP-1:0] T_COLOK = colok_tab(PW);

    // (a + b) mod DEPTH for a < DEPTH, b <= DEPTH, given as b mod 2^AW and b - DEPTH (AW+2
    // bits, two's complement): both sums at once, the sign of the second one picks
    function automatic [AW-1:0] addmod(input [AW-1:0] a, input [AW-1:0] b,
                                       input [AW+1:0] bd);
        reg [AW-1:0] s;
        reg [AW+1:0] t;
        begin
            s = a + b;
            t = {2'b00, a} + bd;
            addmod = t[AW+1] ? s[AW-1:0] : t[AW-1:0];
        end
    endfunction

    // ---------------------------------------------------------------- line buffer
    reg [WB-1:0] mem [0:DEPTH-1];

    // ---------------------------------------------------------------- shared state
    // D = rows written - lowest row the reader's output row needs, kept as
    // er = D - (rows it needs) (>= 0: the reader may go) and ew = D - ROWS (< 0: the
    // writer may go); both step by +1 when a row is written and by the row's table entry
    // (nh*, nl*: the current output row's) when the reader leaves an output row
    reg [PB-1:0] er, ew;
    reg [PB-1:0] nh0, nh1, nl0, nl1;
    reg [OYB-1:0] oy;           // output pixel being read
    reg [OXB-1:0] ox;
    reg oy_l, ox_l;             // ... at its last row / column
    reg [KYP-1:0] rowok;        // tap rows / columns of (oy, ox) inside the image
    reg [KXP-1:0] colok;
    reg [AW-1:0] waddr;         // writer: word address (slot*RW + column word)
    reg [WCB-1:0] wcol;         // writer: word within the row
    reg wa_l, wc_l;             // ... at DEPTH - 1, RW - 1
    reg v1;                     // read stage holds a beat
    reg [TAPS-1:0] pad1;        // read stage: tap is padding
    reg m_valid;
    reg [TAPS*ELEMS*OBITS-1:0] m_data;

    wire pix_last;              // the beat being read is the last of its output pixel
    wire [TAPS-1:0] pad_now;    // padding flags of the beat being read
    wire [TAPS*WB-1:0] q;       // read stage data (registers in the branches below)

    // writer
    wire in_fire = s_axis_tvalid && ew[PB-1];
    wire w_row_end = in_fire && wc_l;
    assign s_axis_tready = ew[PB-1];

    // reader: may issue while all rows of the current output row are written
    wire can = !er[PB-1];
    wire adv = !m_valid || m_axis_tready;   // the pipeline moves
    wire issue = adv && can;                // a read happens this cycle
    wire pix_end = issue && pix_last;
    wire row_end = pix_end && ox_l;
    wire [OYB-1:0] oy_nx = oy_l ? {OYB{1'b0}} : oy + 1'b1;
    wire [OXB-1:0] ox_nx = ox_l ? {OXB{1'b0}} : ox + 1'b1;
    wire [PB-1:0] er_step = row_end ? (w_row_end ? nh1 : nh0) : (w_row_end ? P_ONE : P_ZERO);
    wire [PB-1:0] ew_step = row_end ? (w_row_end ? nl1 : nl0) : (w_row_end ? P_ONE : P_ZERO);

    always @(posedge clk) begin
        if (in_fire) mem[waddr] <= s_axis_tdata;
    end

    always @(posedge clk) begin
        if (!rst_n) begin
            er <= P_ER0;
            ew <= P_EW0;
            nh0 <= T_NH0[PB-1:0];
            nh1 <= T_NH1[PB-1:0];
            nl0 <= T_NL0[PB-1:0];
            nl1 <= T_NL1[PB-1:0];
            oy <= {OYB{1'b0}};
            ox <= {OXB{1'b0}};
            oy_l <= OH1;
            ox_l <= OW1;
            rowok <= T_ROWOK[KYP-1:0];
            colok <= T_COLOK[KXP-1:0];
            waddr <= {AW{1'b0}};
            wcol <= {WCB{1'b0}};
            wa_l <= DEPTH1;
            wc_l <= RW1;
            v1 <= 1'b0;
            m_valid <= 1'b0;
        end else begin
            er <= er + er_step;
            ew <= ew + ew_step;
            if (in_fire) begin
                waddr <= wa_l ? {AW{1'b0}} : waddr + 1'b1;
                wa_l <= wa_l ? DEPTH1 : (waddr == WA_PEN);
                wcol <= wc_l ? {WCB{1'b0}} : wcol + 1'b1;
                wc_l <= wc_l ? RW1 : (wcol == WC_PEN);
            end
            if (pix_end) begin
                ox <= ox_nx;
                ox_l <= ox_l ? OW1 : (ox == OX_PEN);
                colok <= T_COLOK[ox_nx*KXP +: KXP];
            end
            if (row_end) begin
                oy <= oy_nx;
                oy_l <= oy_l ? OH1 : (oy == OY_PEN);
                rowok <= T_ROWOK[oy_nx*KYP +: KYP];
                nh0 <= T_NH0[oy_nx*PB +: PB];
                nh1 <= T_NH1[oy_nx*PB +: PB];
                nl0 <= T_NL0[oy_nx*PB +: PB];
                nl1 <= T_NL1[oy_nx*PB +: PB];
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
            // one tap per beat: word w of tap column kx of tap row ky; one block-RAM read
            // port. colw = (ox*SW - PW)*CW + kx*CW + w and the slot base rbase of tap row
            // ky are kept (mod 2^AW) as counters; the read address is their sum.
            reg [CWB-1:0] w;
            reg [KXB-1:0] kx;
            reg [KYB-1:0] ky;
            reg w_l, kx_l, ky_l;
            reg [AW-1:0] colw, leftw;   // word column of this beat, of its tap column 0
            reg [AW-1:0] rbase, tbase;  // slot*RW of tap row ky, of tap row 0
            reg [WB-1:0] rq;
            wire [AW-1:0] raddr = rbase + colw;
            wire tr_end = w_l && kx_l;  // last word of a tap row
            wire [AW-1:0] tbase_nx = oy_l ? addmod(tbase, A_FJM, A2_FJMD)
                                          : addmod(tbase, A_SHM, A2_SHMD);
            wire [AW-1:0] leftw_nx = ox_l ? A_NPW : leftw + A_SWCW;
            assign pix_last = tr_end && ky_l;
            assign pad_now = !(rowok[ky] && colok[kx]);
            assign q = rq;
            always @(posedge clk) begin
                if (adv) rq <= mem[raddr];
            end
            always @(posedge clk) begin
                if (!rst_n) begin
                    w <= {CWB{1'b0}};
                    kx <= {KXB{1'b0}};
                    ky <= {KYB{1'b0}};
                    w_l <= CW1;
                    kx_l <= KW1;
                    ky_l <= KH1;
                    colw <= A_NPW;
                    leftw <= A_NPW;
                    rbase <= A_T0;
                    tbase <= A_T0;
                end else if (issue) begin
                    w <= w_l ? {CWB{1'b0}} : w + 1'b1;
                    w_l <= w_l ? CW1 : (w == CW_PEN);
                    if (w_l) begin
                        kx <= kx_l ? {KXB{1'b0}} : kx + 1'b1;
                        kx_l <= kx_l ? KW1 : (kx == KX_PEN);
                    end
                    if (!tr_end) begin
                        colw <= colw + 1'b1;
                    end else if (!ky_l) begin
                        colw <= leftw;
                        rbase <= addmod(rbase, A_RW, A2_RWD);
                    end else begin
                        colw <= leftw_nx;
                        leftw <= leftw_nx;
                        rbase <= ox_l ? tbase_nx : tbase;
                        if (ox_l) tbase <= tbase_nx;
                    end
                    if (tr_end) begin
                        ky <= ky_l ? {KYB{1'b0}} : ky + 1'b1;
                        ky_l <= ky_l ? KH1 : (ky == KY_PEN);
                    end
                end
            end
        end else begin : g_regs
            // TAPS taps (whole pixels, CW == 1) per beat, beat b of the pixel holds taps
            // b*TAPS .. b*TAPS+TAPS-1: the slot base of every tap row and the word column
            // of every tap column are kept (mod 2^AW) as counters, each tap selects its
            // pair and padding flags by b (constant tables); then TAPS synchronous reads of
            // the register array.
            localparam integer NB = KK / TAPS;
            localparam integer BB = (NB > 1) ? $clog2(NB) : 1;
            localparam integer I_BP = NB - 2;
            localparam [BB-1:0] B_PEN = I_BP[BB-1:0];
            localparam [0:0] NB1 = (NB == 1) ? 1'b1 : 1'b0;
            reg [BB-1:0] b;
            reg b_l;
            wire [KH*AW-1:0] bases;     // slot*RW of tap row ky
            wire [KW*AW-1:0] cols;      // word column of tap column kx
            genvar gk;
            for (gk = 0; gk < KH; gk = gk + 1) begin : g_row
                localparam integer I_B0 = ((T0 + gk) % ROWS) * RW;
                localparam [AW-1:0] A_B0 = I_B0[AW-1:0];
                reg [AW-1:0] base;
                always @(posedge clk) begin
                    if (!rst_n) base <= A_B0;
                    else if (row_end) base <= oy_l ? addmod(base, A_FJM, A2_FJMD)
                                                   : addmod(base, A_SHM, A2_SHMD);
                end
                assign bases[gk*AW +: AW] = base;
            end
            for (gk = 0; gk < KW; gk = gk + 1) begin : g_col
                localparam integer I_C0 = gk - PW;
                localparam [AW-1:0] A_C0 = I_C0[AW-1:0];
                reg [AW-1:0] col;
                always @(posedge clk) begin
                    if (!rst_n) col <= A_C0;
                    else if (pix_end) col <= ox_l ? A_C0 : col + A_SWCW;
                end
                assign cols[gk*AW +: AW] = col;
            end
            assign pix_last = b_l;
            genvar gi, gn;
            for (gi = 0; gi < TAPS; gi = gi + 1) begin : g_tap
                // the NB (tap row, tap column) pairs this tap takes, by beat
                wire [NB*AW-1:0] obase, ocol;
                wire [NB-1:0] ook;
                for (gn = 0; gn < NB; gn = gn + 1) begin : g_opt
                    localparam integer TKY = (gn * TAPS + gi) / KW;
                    localparam integer TKX = (gn * TAPS + gi) % KW;
                    assign obase[gn*AW +: AW] = bases[TKY*AW +: AW];
                    assign ocol[gn*AW +: AW] = cols[TKX*AW +: AW];
                    assign ook[gn] = rowok[TKY] && colok[TKX];
                end
                wire [AW-1:0] raddr = obase[b*AW +: AW] + ocol[b*AW +: AW];
                reg [WB-1:0] rq;
                assign pad_now[gi] = !ook[b];
                assign q[gi*WB +: WB] = rq;
                always @(posedge clk) begin
                    if (adv) rq <= mem[raddr];
                end
            end
            always @(posedge clk) begin
                if (!rst_n) begin
                    b <= {BB{1'b0}};
                    b_l <= NB1;
                end else if (issue) begin
                    b <= b_l ? {BB{1'b0}} : b + 1'b1;
                    b_l <= b_l ? NB1 : (b == B_PEN);
                end
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

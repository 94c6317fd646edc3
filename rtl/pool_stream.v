`timescale 1ns/1ps
// pool_stream: streaming max pool over non-overlapping KH x KW windows (stride = kernel),
// as FINN's StreamingMaxPool.
//
// Input frames: an H x W x C image in raster order (rows, then pixels, channels
// innermost), ELEMS channels per beat (element 0 at the LSBs), CF = C/ELEMS beats per
// pixel. Output frames: OH = H/KH rows of OW = W/KW pooled pixels (floor division: the
// last W - OW*KW columns of every row and the last H - OH*KH rows are consumed and
// dropped), same beat format, OH*OW*CF beats per frame:
//   out[oy][ox][c] = max over ky < KH, kx < KW of in[oy*KH + ky][ox*KW + kx][c]
// compared as signed (SIGNED = 1, two's complement) or unsigned numbers. For bipolar
// 1-bit data (1 -> +1, 0 -> -1) the unsigned max is an OR, which is the bipolar max.
//
// Parameters: H, W (input rows, columns), C (channels), KH, KW (window), ELEMS (elements
// per beat, divides C), EBITS (bits per element), SIGNED (0/1).
//
// Storage: a row buffer of OW*CF words of ELEMS*EBITS bits holds the running maxima of
// one row of windows; word ox*CF + cf holds channels cf*ELEMS.. of window ox. The first
// input of a window overwrites its word, later ones update it, and the last one
// (kx = KW-1, ky = KH-1) goes straight to the output register instead, so no frame
// buffer is needed. The row buffer has one write port and one synchronous read port with
// enable (`if (fire) hq <= rowbuf[bp_nx]`, no reset: LUT RAM or block RAM): the word of
// the next input beat is read ahead, when the current one is accepted, at the address the
// position counters give for it (bp_nx, from registered state only). When the next beat
// updates the very word the current one writes (CF == 1 within a window, or a single
// word per row), that read sees the old word, so the written value is kept in a register
// (fq) and used instead (fwd). Every end-of-count test is a registered flag updated with
// its counter (compared with the value before the last one), so no counter compare or
// adder lies between a register and the row buffer, the max or the output register.
//
// Throughput: one input beat per cycle (sustained when the output is ready; beats that
// do not complete a window are accepted even while the output is stalled).
// Latency: a pooled beat is on m_axis one cycle after the last input beat of its window
// was accepted. s_axis_tready depends on registered state and m_axis_tready only.
module pool_stream #(
    parameter integer H = 4,
    parameter integer W = 4,
    parameter integer C = 2,
    parameter integer KH = 2,
    parameter integer KW = 2,
    parameter integer ELEMS = 1,
    parameter integer EBITS = 4,
    parameter integer SIGNED = 0
) (
    input  wire                   clk,
    input  wire                   rst_n,
    input  wire [ELEMS*EBITS-1:0] s_axis_tdata,
    input  wire                   s_axis_tvalid,
    output wire                   s_axis_tready,
    output wire [ELEMS*EBITS-1:0] m_axis_tdata,
    output wire                   m_axis_tvalid,
    input  wire                   m_axis_tready
);
    localparam integer CF = C / ELEMS;
    localparam integer OH = H / KH;
    localparam integer OW = W / KW;
    localparam integer NB = OW * CF;                      // row buffer words
    localparam integer DW = ELEMS * EBITS;
    localparam integer CFB = (CF > 1) ? $clog2(CF) : 1;
    localparam integer XB = (W > 1) ? $clog2(W) : 1;
    localparam integer YB = (H > 1) ? $clog2(H) : 1;
    localparam integer KXB = (KW > 1) ? $clog2(KW) : 1;
    localparam integer KYB = (KH > 1) ? $clog2(KH) : 1;
    localparam integer OYB = (OH > 1) ? $clog2(OH) : 1;
    localparam integer BB = (NB > 1) ? $clog2(NB) : 1;
    // second-to-last values of the counters (a flag "last" is set when the counter
    // steps from this value), sized; unused when the count is 1
    localparam integer CF_P = CF - 2;
    localparam integer X_P = W - 2;
    localparam integer Y_P = H - 2;
    localparam integer KX_P = KW - 2;
    localparam integer KY_P = KH - 2;
    localparam integer OY_P = OH - 2;
    localparam integer B_P = NB - 2;
    localparam [CFB-1:0] CF_PEN = CF_P[CFB-1:0];
    localparam [XB-1:0] X_PEN = X_P[XB-1:0];
    localparam [YB-1:0] Y_PEN = Y_P[YB-1:0];
    localparam [KXB-1:0] KX_PEN = KX_P[KXB-1:0];
    localparam [KYB-1:0] KY_PEN = KY_P[KYB-1:0];
    localparam [OYB-1:0] OY_PEN = OY_P[OYB-1:0];
    localparam [BB-1:0] B_PEN = B_P[BB-1:0];
    // counts of one (the counter stays 0, its "last" flag stays set)
    localparam [0:0] CF1 = (CF == 1) ? 1'b1 : 1'b0;
    localparam [0:0] W1 = (W == 1) ? 1'b1 : 1'b0;
    localparam [0:0] H1 = (H == 1) ? 1'b1 : 1'b0;
    localparam [0:0] KW1 = (KW == 1) ? 1'b1 : 1'b0;
    localparam [0:0] KH1 = (KH == 1) ? 1'b1 : 1'b0;
    localparam [0:0] OH1 = (OH == 1) ? 1'b1 : 1'b0;
    localparam [0:0] NB1 = (NB == 1) ? 1'b1 : 1'b0;

    // ---------------------------------------------------------------- position
    // of the current beat (the next one s_axis offers); *_l: the counter is at its last
    // value, kx0/ky0: at 0
    reg [CFB-1:0] cf;          // channel beat within the pixel
    reg [XB-1:0]  x;           // input column
    reg [YB-1:0]  y;           // input row
    reg [KXB-1:0] kx;          // column within the window
    reg [KYB-1:0] ky;          // row within the window
    reg [OYB-1:0] oy;          // output row
    reg           cf_l, x_l, y_l, kx_l, ky_l, oy_l, b_l, kx0, ky0;
    reg           xin, yin;    // inside the pooled region (not in the dropped tail)
    reg [BB-1:0]  bp, bbase;   // row buffer word of this beat, first word of this window

    // ---------------------------------------------------------------- data path
    reg [DW-1:0] rowbuf [0:NB-1];
    reg [DW-1:0] hq;           // rowbuf[bp], read when the previous beat was accepted
    reg [DW-1:0] fq;           // the word the previous beat wrote
    reg          fwd;          // ... which is rowbuf[bp] (hq is older)
    reg [DW-1:0] m_data;
    reg          m_valid;
    reg [DW-1:0] pooled;

    wire active = xin && yin;
    wire first = kx0 && ky0;
    wire emit = active && kx_l && ky_l;
    wire m_free = !m_valid || m_axis_tready;
    assign s_axis_tready = !emit || m_free;
    wire fire = s_axis_tvalid && s_axis_tready;
    wire [DW-1:0] held = fwd ? fq : hq;
    wire row_end = cf_l && x_l;              // the beat ends an input row
    wire win_step = cf_l && !x_l && xin;     // ... ends a pixel inside the pooled region
    // the row buffer word of the next beat (bp after this one)
    wire [BB-1:0] bp_inc = bp + 1'b1;
    wire [BB-1:0] bp_nx = !cf_l ? (xin ? bp_inc : bp)
                        : (x_l || (xin && kx_l && b_l)) ? {BB{1'b0}}
                        : !xin ? bp
                        : !kx_l ? bbase : bp_inc;
    // the next beat updates the word this one writes: next pixel of the same window with
    // CF == 1, or the next row or window with a single word per row
    wire fwd_nx = active && !emit && cf_l && (kx_l ? NB1[0] : CF1[0]);

    assign m_axis_tdata = m_data;
    assign m_axis_tvalid = m_valid;

    integer e;
    always @* begin
        for (e = 0; e < ELEMS; e = e + 1) begin
            if (first)
                pooled[e*EBITS +: EBITS] = s_axis_tdata[e*EBITS +: EBITS];
            else if (greater(s_axis_tdata[e*EBITS +: EBITS], held[e*EBITS +: EBITS]))
                pooled[e*EBITS +: EBITS] = s_axis_tdata[e*EBITS +: EBITS];
            else
                pooled[e*EBITS +: EBITS] = held[e*EBITS +: EBITS];
        end
    end

    function automatic greater(input [EBITS-1:0] a, input [EBITS-1:0] b);
        if (SIGNED != 0) greater = $signed(a) > $signed(b);
        else greater = a > b;
    endfunction

    always @(posedge clk) begin
        if (fire && active && !emit) rowbuf[bp] <= pooled;
        if (fire) hq <= rowbuf[bp_nx];
        if (fire) fq <= pooled;
        if (fire && emit) m_data <= pooled;
    end

    always @(posedge clk) begin
        if (!rst_n) begin
            m_valid <= 1'b0;
            fwd <= 1'b0;
            cf <= {CFB{1'b0}};
            x <= {XB{1'b0}};
            y <= {YB{1'b0}};
            kx <= {KXB{1'b0}};
            ky <= {KYB{1'b0}};
            oy <= {OYB{1'b0}};
            cf_l <= CF1;
            x_l <= W1;
            y_l <= H1;
            kx_l <= KW1;
            ky_l <= KH1;
            oy_l <= OH1;
            b_l <= NB1;
            kx0 <= 1'b1;
            ky0 <= 1'b1;
            xin <= 1'b1;
            yin <= 1'b1;
            bp <= {BB{1'b0}};
            bbase <= {BB{1'b0}};
        end else begin
            if (fire && emit) m_valid <= 1'b1;
            else if (m_axis_tready) m_valid <= 1'b0;
            if (fire) begin
                fwd <= fwd_nx;
                bp <= bp_nx;
                // channel beat
                cf <= cf_l ? {CFB{1'b0}} : cf + 1'b1;
                cf_l <= cf_l ? CF1 : (cf == CF_PEN);
                // row buffer word (bp_nx above), window base, region
                if (!cf_l) begin
                    if (xin) b_l <= (bp == B_PEN);
                end else if (x_l) begin
                    bbase <= {BB{1'b0}};
                    b_l <= NB1;
                    xin <= 1'b1;
                end else if (xin) begin
                    if (!kx_l) begin
                        // next pixel of the same window: its first word again
                        if (!CF1[0]) b_l <= 1'b0;
                    end else if (b_l) begin
                        xin <= 1'b0;   // the rest of the row is dropped
                        bbase <= {BB{1'b0}};
                        b_l <= NB1;
                    end else begin
                        bbase <= bp_inc;
                        b_l <= (bp == B_PEN);
                    end
                end
                // column, column within the window
                if (row_end) begin
                    x <= {XB{1'b0}};
                    x_l <= W1;
                    kx <= {KXB{1'b0}};
                    kx_l <= KW1;
                    kx0 <= 1'b1;
                end else if (cf_l) begin
                    x <= x + 1'b1;
                    x_l <= (x == X_PEN);
                    if (win_step) begin
                        kx <= kx_l ? {KXB{1'b0}} : kx + 1'b1;
                        kx_l <= kx_l ? KW1 : (kx == KX_PEN);
                        kx0 <= kx_l;
                    end
                end
                // row, row within the window, output row
                if (row_end) begin
                    if (y_l) begin
                        y <= {YB{1'b0}};
                        y_l <= H1;
                        ky <= {KYB{1'b0}};
                        ky_l <= KH1;
                        ky0 <= 1'b1;
                        oy <= {OYB{1'b0}};
                        oy_l <= OH1;
                        yin <= 1'b1;
                    end else begin
                        y <= y + 1'b1;
                        y_l <= (y == Y_PEN);
                        if (yin) begin
                            ky <= ky_l ? {KYB{1'b0}} : ky + 1'b1;
                            ky_l <= ky_l ? KH1 : (ky == KY_PEN);
                            ky0 <= ky_l;
                            if (ky_l) begin
                                if (oy_l) yin <= 1'b0;
                                oy <= oy_l ? {OYB{1'b0}} : oy + 1'b1;
                                oy_l <= oy_l ? OH1 : (oy == OY_PEN);
                            end
                        end
                    end
                end
            end
        end
    end
endmodule

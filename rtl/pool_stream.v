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
// Storage: a row buffer of OW*CF words of ELEMS*EBITS bits (registers) holds the running
// maxima of one row of windows; word ox*CF + cf holds channels cf*ELEMS.. of window ox.
// The first input of a window overwrites its word, later ones update it, and the last
// one (kx = KW-1, ky = KH-1) goes straight to the output register instead, so no frame
// buffer is needed.
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
    // last values of the counters, sized
    localparam integer CF_L = CF - 1;
    localparam integer X_L = W - 1;
    localparam integer Y_L = H - 1;
    localparam integer KX_L = KW - 1;
    localparam integer KY_L = KH - 1;
    localparam integer OY_L = OH - 1;
    localparam integer B_L = NB - 1;
    localparam [CFB-1:0] CF_LAST = CF_L[CFB-1:0];
    localparam [XB-1:0] X_LAST = X_L[XB-1:0];
    localparam [YB-1:0] Y_LAST = Y_L[YB-1:0];
    localparam [KXB-1:0] KX_LAST = KX_L[KXB-1:0];
    localparam [KYB-1:0] KY_LAST = KY_L[KYB-1:0];
    localparam [OYB-1:0] OY_LAST = OY_L[OYB-1:0];
    localparam [BB-1:0] B_LAST = B_L[BB-1:0];

    // ---------------------------------------------------------------- position
    reg [CFB-1:0] cf;          // channel beat within the pixel
    reg [XB-1:0]  x;           // input column
    reg [YB-1:0]  y;           // input row
    reg [KXB-1:0] kx;          // column within the window
    reg [KYB-1:0] ky;          // row within the window
    reg [OYB-1:0] oy;          // output row
    reg           xin, yin;    // inside the pooled region (not in the dropped tail)
    reg [BB-1:0]  bp, bbase;   // row buffer word of this beat, first word of this window

    // ---------------------------------------------------------------- data path
    reg [DW-1:0] rowbuf [0:NB-1];
    reg [DW-1:0] m_data;
    reg          m_valid;
    reg [DW-1:0] pooled;

    wire active = xin && yin;
    wire first = (kx == {KXB{1'b0}}) && (ky == {KYB{1'b0}});
    wire emit = active && (kx == KX_LAST) && (ky == KY_LAST);
    wire m_free = !m_valid || m_axis_tready;
    assign s_axis_tready = !emit || m_free;
    wire fire = s_axis_tvalid && s_axis_tready;
    wire [DW-1:0] held = rowbuf[bp];

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
        if (fire && emit) m_data <= pooled;
    end

    always @(posedge clk) begin
        if (!rst_n) begin
            m_valid <= 1'b0;
            cf <= {CFB{1'b0}};
            x <= {XB{1'b0}};
            y <= {YB{1'b0}};
            kx <= {KXB{1'b0}};
            ky <= {KYB{1'b0}};
            oy <= {OYB{1'b0}};
            xin <= 1'b1;
            yin <= 1'b1;
            bp <= {BB{1'b0}};
            bbase <= {BB{1'b0}};
        end else begin
            if (fire && emit) m_valid <= 1'b1;
            else if (m_axis_tready) m_valid <= 1'b0;
            if (fire) begin
                if (cf != CF_LAST) begin
                    cf <= cf + 1'b1;
                    if (xin) bp <= bp + 1'b1;
                end else begin
                    cf <= {CFB{1'b0}};
                    if (x == X_LAST) begin
                        // end of an input row: back to window 0, next row
                        x <= {XB{1'b0}};
                        kx <= {KXB{1'b0}};
                        xin <= 1'b1;
                        bp <= {BB{1'b0}};
                        bbase <= {BB{1'b0}};
                        if (y == Y_LAST) begin
                            y <= {YB{1'b0}};
                            ky <= {KYB{1'b0}};
                            oy <= {OYB{1'b0}};
                            yin <= 1'b1;
                        end else begin
                            y <= y + 1'b1;
                            if (yin) begin
                                if (ky != KY_LAST) begin
                                    ky <= ky + 1'b1;
                                end else begin
                                    ky <= {KYB{1'b0}};
                                    if (oy == OY_LAST) yin <= 1'b0;
                                    else oy <= oy + 1'b1;
                                end
                            end
                        end
                    end else begin
                        x <= x + 1'b1;
                        if (xin) begin
                            if (kx != KX_LAST) begin
                                // next pixel of the same window: same row buffer words
                                kx <= kx + 1'b1;
                                bp <= bbase;
                            end else begin
                                kx <= {KXB{1'b0}};
                                if (bp == B_LAST) begin
                                    xin <= 1'b0;   // the rest of the row is dropped
                                    bp <= {BB{1'b0}};
                                    bbase <= {BB{1'b0}};
                                end else begin
                                    bp <= bp + 1'b1;
                                    bbase <= bp + 1'b1;
                                end
                            end
                        end
                    end
                end
            end
        end
    end
endmodule

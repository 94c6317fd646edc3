`timescale 1ns/1ps
// mvau_stream: streaming matrix-vector(-threshold) unit, FINN style, folded by PE and SIMD.
//
// Computes, per frame, y = W x for an MH x MW integer matrix W and an MW-element input
// vector x, and then (NUM_T > 0) the multi-threshold activation
//   out[c] = OFFSET + #{k : y[c] >= T[c][k]}          (NUM_T sorted thresholds per row)
// or (NUM_T == 0) the accumulator itself, plus an integer bias when HAS_BIAS.
//
// Folding: SIMD input elements per input beat, PE output elements per output beat.
// SF = MW/SIMD input beats and NF = MH/PE output beats per frame. The unit performs
// one step (PE x SIMD multiply-accumulates) per cycle, NF*SF steps per frame, so its
// steady-state throughput is one frame every NF*SF cycles (when its output is accepted).
//
// Input frames land in a two-frame (ping-pong) buffer: a frame is accepted while the
// previous one is being computed, so neighbouring layers never wait on each other's
// folding schedule and no FIFO sizing is needed. Latency of one frame through an idle
// unit: SF input beats to fill, then NF*SF compute cycles; each group of PE results is
// on m_axis two cycles after its last step (result register, output register).
//
// Weights and thresholds come from per-layer ROM modules (generated, combinational):
// w_addr = nf*SF + sf selects PE*SIMD weights (p*SIMD + s, element 0 at the LSBs);
// t_addr = nf selects PE*NUM_T thresholds (p*NUM_T + k), or with NUM_T == 0 and
// HAS_BIAS, PE integer biases. Streams are AXI-Stream with element 0 at the least
// significant bits; tready depends on internal state only, never on tvalid.
//
// Arithmetic is two's complement modulo 2^ACC_BITS. ACC_BITS is derived from the exact
// range of the final accumulator (and the thresholds), so partial sums may wrap but the
// final value is exact. Inputs: IN_BIPOLAR 1-bit (1 -> +1, 0 -> -1), else signed
// (IN_SIGNED, sign-extended) or unsigned (zero-extended before the signed multiply).
// Weights: W_BIPOLAR 1-bit (1 -> +1, 0 -> -1), else signed two's complement.
// LUT_MUL = 1 builds each product from shifted adds of the input (one per weight bit),
// which keeps narrow weights out of DSP blocks; LUT_MUL = 0 writes `*`.
module mvau_stream #(
    parameter integer MW = 8,
    parameter integer MH = 8,
    parameter integer PE = 1,
    parameter integer SIMD = 1,
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
    parameter integer WA_BITS = 8,
    parameter integer TA_BITS = 8
) (
    input  wire                         clk,
    input  wire                         rst_n,
    input  wire [SIMD*IN_BITS-1:0]      s_axis_tdata,
    input  wire                         s_axis_tvalid,
    output wire                         s_axis_tready,
    output wire [PE*OUT_BITS-1:0]       m_axis_tdata,
    output wire                         m_axis_tvalid,
    input  wire                         m_axis_tready,
    output wire [WA_BITS-1:0]           w_addr,
    input  wire [PE*SIMD*W_BITS-1:0]    w_data,
    output wire [TA_BITS-1:0]           t_addr,
    input  wire [PE*(NUM_T>0?NUM_T:1)*ACC_BITS-1:0] t_data
);
    localparam integer SF = MW / SIMD;
    localparam integer NF = MH / PE;
    localparam integer NT = (NUM_T > 0) ? NUM_T : 1;
    localparam integer SF_BITS = (SF > 1) ? $clog2(SF) : 1;
    localparam integer NF_BITS = (NF > 1) ? $clog2(NF) : 1;
    // operand widths of one product: the input widened to signed, the weight as signed
    localparam integer XB = IN_BIPOLAR ? 2 : IN_BITS + 1;
    localparam integer WB = W_BIPOLAR ? 2 : W_BITS;
    localparam integer PB = XB + WB;

    // ---------------------------------------------------------------- input ping-pong
    reg [SIMD*IN_BITS-1:0] buffer [0:2*SF-1];
    reg [1:0]  full;
    reg        wsel, rsel;
    reg [SF_BITS-1:0] wptr;
    wire in_fire = s_axis_tvalid && !full[wsel];
    assign s_axis_tready = !full[wsel];

    // ---------------------------------------------------------------- control
    reg [SF_BITS-1:0] sf;
    reg [NF_BITS-1:0] nf;
    reg        r_valid;
    reg [NF_BITS-1:0] r_nf;
    reg [PE*OUT_BITS-1:0] m_data;
    reg        m_valid;

    wire m_free = !m_valid || m_axis_tready;
    wire r_take = r_valid && m_free;
    wire r_free = !r_valid || r_take;
    wire last_sf = (sf == SF - 1);
    wire step = full[rsel] && (!last_sf || r_free);

    wire [SIMD*IN_BITS-1:0] x_word = buffer[rsel * SF + sf];
    assign w_addr = nf * SF + sf;
    assign t_addr = r_nf;

    function automatic signed [XB-1:0] in_value(input [IN_BITS-1:0] v);
        if (IN_BIPOLAR) in_value = v[0] ? 1 : -1;
        else if (IN_SIGNED) in_value = {v[IN_BITS-1], v};
        else in_value = {1'b0, v};
    endfunction

    function automatic signed [WB-1:0] w_value(input [W_BITS-1:0] v);
        if (W_BIPOLAR) w_value = v[0] ? 1 : -1;
        else w_value = v;
    endfunction

    // x * w exactly in PB bits; two's complement w = -w[WB-1]*2^(WB-1) + sum w[j]*2^j
    function automatic signed [PB-1:0] product(input signed [XB-1:0] x, input signed [WB-1:0] w);
        integer j;
        reg signed [PB-1:0] xs;
        begin
            xs = x;
            if (LUT_MUL) begin
                product = 0;
                for (j = 0; j < WB - 1; j = j + 1)
                    product = product + ((xs <<< j) & {PB{w[j]}});
                product = product - ((xs <<< (WB - 1)) & {PB{w[WB-1]}});
            end else begin
                product = xs * w;
            end
        end
    endfunction

    // ---------------------------------------------------------------- one PE per block
    wire [PE*OUT_BITS-1:0] activated;
    genvar gp;
    generate
        for (gp = 0; gp < PE; gp = gp + 1) begin : g_pe
            reg signed [ACC_BITS-1:0] acc, r_acc, acc_next;
            reg signed [PB-1:0] prod;
            integer s;
            // running sum of this step's SIMD products (a new row starts at sf == 0)
            always @* begin
                acc_next = (sf == 0) ? {ACC_BITS{1'b0}} : acc;
                for (s = 0; s < SIMD; s = s + 1) begin
                    prod = product(in_value(x_word[s*IN_BITS +: IN_BITS]),
                                   w_value(w_data[(gp*SIMD + s)*W_BITS +: W_BITS]));
                    acc_next = acc_next + prod;
                end
            end
            always @(posedge clk) begin
                if (step) begin
                    acc <= acc_next;
                    if (last_sf) r_acc <= acc_next;
                end
            end
            // stage 2: thresholds (or bias) applied to the finished accumulator
            if (NUM_T == 0) begin : g_acc
                wire signed [ACC_BITS-1:0] bias = t_data[gp*ACC_BITS +: ACC_BITS];
                assign activated[gp*OUT_BITS +: OUT_BITS] = HAS_BIAS ? r_acc + bias : r_acc;
            end else begin : g_thr
                integer k, count;
                always @* begin
                    count = OFFSET;
                    for (k = 0; k < NT; k = k + 1)
                        if (r_acc >= $signed(t_data[(gp*NT + k)*ACC_BITS +: ACC_BITS]))
                            count = count + 1;
                end
                assign activated[gp*OUT_BITS +: OUT_BITS] = count[OUT_BITS-1:0];
            end
        end
    endgenerate

    always @(posedge clk) begin
        if (!rst_n) begin
            full <= 2'b00;
            wsel <= 1'b0;
            rsel <= 1'b0;
            wptr <= 0;
            sf <= 0;
            nf <= 0;
            r_valid <= 1'b0;
            r_nf <= 0;
            m_valid <= 1'b0;
        end else begin
            if (in_fire) begin
                buffer[wsel * SF + wptr] <= s_axis_tdata;
                if (wptr == SF - 1) begin
                    wptr <= 0;
                    full[wsel] <= 1'b1;
                    wsel <= !wsel;
                end else begin
                    wptr <= wptr + 1'b1;
                end
            end
            if (r_take) r_valid <= 1'b0;
            if (step) begin
                if (last_sf) begin
                    r_valid <= 1'b1;
                    r_nf <= nf;
                    sf <= 0;
                    if (nf == NF - 1) begin
                        nf <= 0;
                        full[rsel] <= 1'b0;
                        rsel <= !rsel;
                    end else begin
                        nf <= nf + 1'b1;
                    end
                end else begin
                    sf <= sf + 1'b1;
                end
            end
            if (m_free) begin
                m_valid <= r_valid;
                if (r_valid) m_data <= activated;
            end
        end
    end

    assign m_axis_tdata = m_data;
    assign m_axis_tvalid = m_valid;
endmodule

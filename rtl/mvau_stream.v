`timescale 1ns/1ps
// mvau_stream: streaming matrix-vector(-threshold) unit, FINN style, folded by PE and SIMD.
//
// Computes, per frame, y = W x for an MH x MW integer matrix W and an MW-element input
// vector x, and then (NUM_T > 0) the multi-threshold activation
//   out[c] = OFFSET + #{k : y[c] >= T[c][k]}          (NUM_T sorted thresholds per row)
// or (NUM_T == 0) the accumulator itself.
//
// Folding: SIMD input elements per input beat, PE output elements per output beat.
// SF = MW/SIMD input beats and NF = MH/PE output beats per frame. The unit performs
// one step (PE x SIMD multiply-accumulates) per cycle, NF*SF steps per frame, so its
// steady-state throughput is one frame every NF*SF cycles.
//
// Input frames land in a two-frame (ping-pong) buffer: a frame is accepted while the
// previous one is being computed, so neighbouring layers never wait on each other's
// folding schedule and no FIFO sizing is needed. Latency: SF cycles to fill + NF*SF
// cycles to compute + 2 output register stages.
//
// Weights and thresholds come from per-layer ROM modules (generated, combinational):
// w_addr = nf*SF + sf selects PE*SIMD weights; t_addr = nf selects PE*NUM_T thresholds
// (or, with NUM_T == 0 and HAS_BIAS, PE integer biases added to the accumulators).
// Streams are AXI-Stream with element 0 at the least significant bits; tready depends
// on internal state only.
//
// Encodings: IN_BIPOLAR / W_BIPOLAR: 1-bit values, 1 -> +1, 0 -> -1. Otherwise inputs
// are signed (IN_SIGNED) or unsigned, weights signed two's complement.
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

    // ---------------------------------------------------------------- input ping-pong
    reg [SIMD*IN_BITS-1:0] buffer [0:2*SF-1];
    reg [1:0]  full;
    reg        wsel, rsel;
    reg [31:0] wptr;
    wire in_fire = s_axis_tvalid && !full[wsel];
    assign s_axis_tready = !full[wsel];

    // ---------------------------------------------------------------- compute loop
    reg [31:0] sf, nf;
    reg signed [ACC_BITS-1:0] acc [0:PE-1];
    reg signed [ACC_BITS-1:0] r_acc [0:PE-1];
    reg        r_valid;
    reg [31:0] r_nf;
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

    function automatic signed [ACC_BITS-1:0] in_value(input [IN_BITS-1:0] v);
        if (IN_BIPOLAR) in_value = v[0] ? 1 : -1;
        else if (IN_SIGNED) in_value = {{(ACC_BITS-IN_BITS){v[IN_BITS-1]}}, v};
        else in_value = {{(ACC_BITS-IN_BITS){1'b0}}, v};
    endfunction

    function automatic signed [ACC_BITS-1:0] w_value(input [W_BITS-1:0] v);
        if (W_BIPOLAR) w_value = v[0] ? 1 : -1;
        else w_value = {{(ACC_BITS-W_BITS){v[W_BITS-1]}}, v};
    endfunction

    // PE dot products of SIMD terms added to the running accumulators
    reg signed [ACC_BITS-1:0] acc_next [0:PE-1];
    integer p, s;
    always @* begin
        for (p = 0; p < PE; p = p + 1) begin
            acc_next[p] = (sf == 0) ? {ACC_BITS{1'b0}} : acc[p];
            for (s = 0; s < SIMD; s = s + 1)
                acc_next[p] = acc_next[p]
                    + in_value(x_word[s*IN_BITS +: IN_BITS])
                    * w_value(w_data[(p*SIMD + s)*W_BITS +: W_BITS]);
        end
    end

    // thresholding of the finished accumulators (stage 2)
    reg [PE*OUT_BITS-1:0] activated;
    integer k;
    reg [31:0] count;
    always @* begin
        for (p = 0; p < PE; p = p + 1) begin
            if (NUM_T == 0) begin
                // no thresholds: the accumulator, plus the integer bias when there is one
                // (t_data then carries PE biases; the sum wraps like the accumulator)
                activated[p*OUT_BITS +: OUT_BITS] = HAS_BIAS
                    ? r_acc[p] + $signed(t_data[p*ACC_BITS +: ACC_BITS]) : r_acc[p];
            end else begin
                count = 0;
                for (k = 0; k < NT; k = k + 1)
                    if (r_acc[p] >= $signed(t_data[(p*NT + k)*ACC_BITS +: ACC_BITS]))
                        count = count + 1;
                activated[p*OUT_BITS +: OUT_BITS] = count + OFFSET;
            end
        end
    end

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
                    wptr <= wptr + 1;
                end
            end
            if (r_take) r_valid <= 1'b0;
            if (step) begin
                for (p = 0; p < PE; p = p + 1) begin
                    acc[p] <= acc_next[p];
                    if (last_sf) r_acc[p] <= acc_next[p];
                end
                if (last_sf) begin
                    r_valid <= 1'b1;
                    r_nf <= nf;
                    sf <= 0;
                    if (nf == NF - 1) begin
                        nf <= 0;
                        full[rsel] <= 1'b0;
                        rsel <= !rsel;
                    end else begin
                        nf <= nf + 1;
                    end
                end else begin
                    sf <= sf + 1;
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

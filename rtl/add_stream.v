`timescale 1ns/1ps
// add_stream: elementwise sum of two streams (residual add), a join of s0 (A) and s1 (B).
//
// Per element i of a beat (element 0 at the LSBs):
//   out[i] = (a[i] << SHIFT_A) + (b[i] << SHIFT_B)
// with a and b sign-extended (A_SIGNED / B_SIGNED = 1) or zero-extended (0), computed
// exactly and truncated to OUT_BITS bits (two's complement): the sum is formed modulo
// 2^OUT_BITS, which equals the exact sum whenever it fits, as the generator guarantees.
//
// Parameters: ELEMS (elements per beat), A_BITS, A_SIGNED, B_BITS, B_SIGNED, SHIFT_A,
// SHIFT_B (left shifts, >= 0, < OUT_BITS), OUT_BITS.
// Ports: s0_axis_* (A, ELEMS*A_BITS), s1_axis_* (B, ELEMS*B_BITS), m_axis_*
// (ELEMS*OUT_BITS). A beat is consumed from both inputs in the same cycle:
// s0_axis_tready = output register free && s1_axis_tvalid, and symmetrically.
//
// Throughput: one beat per cycle. Latency: 1 cycle (a beat pair accepted at clock edge t
// is on m_axis after edge t and can be taken at edge t+1 at the earliest).
module add_stream #(
    parameter integer ELEMS = 1,
    parameter integer A_BITS = 4,
    parameter integer A_SIGNED = 0,
    parameter integer B_BITS = 4,
    parameter integer B_SIGNED = 0,
    parameter integer SHIFT_A = 0,
    parameter integer SHIFT_B = 0,
    parameter integer OUT_BITS = 5
) (
    input  wire                      clk,
    input  wire                      rst_n,
    input  wire [ELEMS*A_BITS-1:0]   s0_axis_tdata,
    input  wire                      s0_axis_tvalid,
    output wire                      s0_axis_tready,
    input  wire [ELEMS*B_BITS-1:0]   s1_axis_tdata,
    input  wire                      s1_axis_tvalid,
    output wire                      s1_axis_tready,
    output wire [ELEMS*OUT_BITS-1:0] m_axis_tdata,
    output wire                      m_axis_tvalid,
    input  wire                      m_axis_tready
);
    reg                      m_valid;
    reg [ELEMS*OUT_BITS-1:0] m_data;
    wire [ELEMS*OUT_BITS-1:0] sum;

    wire m_free = !m_valid || m_axis_tready;
    assign s0_axis_tready = m_free && s1_axis_tvalid;
    assign s1_axis_tready = m_free && s0_axis_tvalid;
    wire fire = m_free && s0_axis_tvalid && s1_axis_tvalid;
    assign m_axis_tvalid = m_valid;
    assign m_axis_tdata = m_data;

    genvar i;
    generate
        for (i = 0; i < ELEMS; i = i + 1) begin : g_elem
            wire [A_BITS-1:0] a = s0_axis_tdata[i*A_BITS +: A_BITS];
            wire [B_BITS-1:0] b = s1_axis_tdata[i*B_BITS +: B_BITS];
            wire [OUT_BITS-1:0] ax, bx;   // a, b extended or truncated to OUT_BITS
            if (A_BITS == OUT_BITS) begin : g_a_same
                assign ax = a;
            end else if (A_BITS > OUT_BITS) begin : g_a_trunc
                assign ax = a[OUT_BITS-1:0];
                // the bits above OUT_BITS cannot change a sum taken modulo 2^OUT_BITS
                /* verilator lint_off UNUSEDSIGNAL */
                wire [A_BITS-OUT_BITS-1:0] unused_a_high = a[A_BITS-1:OUT_BITS];
                /* verilator lint_on UNUSEDSIGNAL */
            end else if (A_SIGNED != 0) begin : g_a_sext
                assign ax = {{(OUT_BITS-A_BITS){a[A_BITS-1]}}, a};
            end else begin : g_a_zext
                assign ax = {{(OUT_BITS-A_BITS){1'b0}}, a};
            end
            if (B_BITS == OUT_BITS) begin : g_b_same
                assign bx = b;
            end else if (B_BITS > OUT_BITS) begin : g_b_trunc
                assign bx = b[OUT_BITS-1:0];
                /* verilator lint_off UNUSEDSIGNAL */
                wire [B_BITS-OUT_BITS-1:0] unused_b_high = b[B_BITS-1:OUT_BITS];
                /* verilator lint_on UNUSEDSIGNAL */
            end else if (B_SIGNED != 0) begin : g_b_sext
                assign bx = {{(OUT_BITS-B_BITS){b[B_BITS-1]}}, b};
            end else begin : g_b_zext
                assign bx = {{(OUT_BITS-B_BITS){1'b0}}, b};
            end
            assign sum[i*OUT_BITS +: OUT_BITS] = (ax << SHIFT_A) + (bx << SHIFT_B);
        end
    endgenerate

    always @(posedge clk) begin
        if (fire) m_data <= sum;
    end

    always @(posedge clk) begin
        if (!rst_n) m_valid <= 1'b0;
        else if (fire) m_valid <= 1'b1;
        else if (m_axis_tready) m_valid <= 1'b0;
    end
endmodule

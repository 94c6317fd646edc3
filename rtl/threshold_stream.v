`timescale 1ns/1ps
// threshold_stream: standalone multi-threshold activation, as FINN's Thresholding.
//
// Frames are pixels of C channels, PE channels per beat (element 0 at the LSBs), so the
// channel fold of a beat is cf = (beat index) mod CF, CF = C/PE, and element p of the
// beat is channel c = cf*PE + p. For every element x:
//   out = OFFSET + #{k < NUM_T : x >= T[c][k]}
// compared as signed ACC_BITS-bit numbers (signed inputs sign-extended, unsigned inputs
// zero-extended), written as OUT_BITS bits (two's complement when negative).
//
// Parameters: C (channels), PE (elements per beat, divides C), IN_BITS, IN_SIGNED (0/1),
// ACC_BITS (compare width: >= IN_BITS when signed, >= IN_BITS + 1 when unsigned), NUM_T
// (thresholds per channel, >= 1), OUT_BITS, OFFSET (integer, may be negative), TA_BITS
// (threshold ROM address width, at least the bits of CF - 1 and at least 1).
//
// Thresholds: an external ROM with a registered read (hw_gen.verilog.rom.rom_module):
// t_data = word t_addr one cycle after t_en. Word cf (CF words) holds T[cf*PE + p][k] at
// element p*NUM_T + k, ACC_BITS bits each, two's complement, element 0 at the LSBs.
// The unit reads word cf (t_en high, t_addr = cf) in the cycle it accepts an input beat.
//
// Pipeline: input register (the ROM reads alongside) -> compare, count the set bits in a
// balanced tree -> output register.
// Throughput: one beat per cycle. Latency: 2 cycles (a beat accepted at clock edge t is
// on m_axis after edge t+1 and can be taken at edge t+2 at the earliest).
// s_axis_tready depends on registered state and m_axis_tready only.
module threshold_stream #(
    parameter integer C = 4,
    parameter integer PE = 2,
    parameter integer IN_BITS = 4,
    parameter integer IN_SIGNED = 0,
    parameter integer ACC_BITS = 6,
    parameter integer NUM_T = 3,
    parameter integer OUT_BITS = 2,
    parameter integer OFFSET = 0,
    parameter integer TA_BITS = 1
) (
    input  wire                         clk,
    input  wire                         rst_n,
    input  wire [PE*IN_BITS-1:0]        s_axis_tdata,
    input  wire                         s_axis_tvalid,
    output wire                         s_axis_tready,
    output wire [PE*OUT_BITS-1:0]       m_axis_tdata,
    output wire                         m_axis_tvalid,
    input  wire                         m_axis_tready,
    output wire                         t_en,
    output wire [TA_BITS-1:0]           t_addr,
    input  wire [PE*NUM_T*ACC_BITS-1:0] t_data
);
    localparam integer CF = C / PE;
    localparam integer CF_L = CF - 1;
    localparam [TA_BITS-1:0] CF_LAST = CF_L[TA_BITS-1:0];
    localparam [OUT_BITS-1:0] OFF = OFFSET[OUT_BITS-1:0];
    localparam [OUT_BITS-1:0] ONE = 1;

    reg [TA_BITS-1:0]    cf;
    reg                  x_valid;
    reg [PE*IN_BITS-1:0] x_data;
    reg                  m_valid;
    reg [PE*OUT_BITS-1:0] m_data;
    wire [PE*OUT_BITS-1:0] level;

    wire m_free = !m_valid || m_axis_tready;
    wire x_free = !x_valid || m_free;
    assign s_axis_tready = x_free;
    wire fire = s_axis_tvalid && x_free;
    assign t_en = fire;
    assign t_addr = cf;
    assign m_axis_tvalid = m_valid;
    assign m_axis_tdata = m_data;

    // number of set bits, mod 2^OUT_BITS, summed in a balanced tree (a chain of NUM_T
    // increments was NUM_T adders deep: 46 cells of logic depth at NUM_T = 15)
    function automatic [OUT_BITS-1:0] ones(input [NUM_T-1:0] b);
        reg [NUM_T*OUT_BITS-1:0] v;
        integer i, n;
        begin
            for (i = 0; i < NUM_T; i = i + 1)
                v[i*OUT_BITS +: OUT_BITS] = b[i] ? ONE : {OUT_BITS{1'b0}};
            for (n = NUM_T; n > 1; n = (n + 1) / 2) begin
                for (i = 0; i < n / 2; i = i + 1)
                    v[i*OUT_BITS +: OUT_BITS] = v[2*i*OUT_BITS +: OUT_BITS]
                                              + v[(2*i+1)*OUT_BITS +: OUT_BITS];
                if (n % 2 == 1) v[(n/2)*OUT_BITS +: OUT_BITS] = v[(n-1)*OUT_BITS +: OUT_BITS];
            end
            ones = v[OUT_BITS-1:0];
        end
    endfunction

    genvar p;
    generate
        for (p = 0; p < PE; p = p + 1) begin : g_pe
            wire [IN_BITS-1:0] xin = x_data[p*IN_BITS +: IN_BITS];
            wire signed [ACC_BITS-1:0] xv;
            if (ACC_BITS == IN_BITS) begin : g_same
                assign xv = xin;
            end else if (IN_SIGNED != 0) begin : g_sext
                assign xv = {{(ACC_BITS-IN_BITS){xin[IN_BITS-1]}}, xin};
            end else begin : g_zext
                assign xv = {{(ACC_BITS-IN_BITS){1'b0}}, xin};
            end
            reg [NUM_T-1:0] ge;       // x >= T[c][k], one bit per threshold
            integer k;
            always @* begin
                for (k = 0; k < NUM_T; k = k + 1)
                    ge[k] = xv >= $signed(t_data[(p*NUM_T+k)*ACC_BITS +: ACC_BITS]);
            end
            assign level[p*OUT_BITS +: OUT_BITS] = OFF + ones(ge);
        end
    endgenerate

    always @(posedge clk) begin
        if (fire) x_data <= s_axis_tdata;
        if (x_valid && m_free) m_data <= level;
    end

    always @(posedge clk) begin
        if (!rst_n) begin
            cf <= {TA_BITS{1'b0}};
            x_valid <= 1'b0;
            m_valid <= 1'b0;
        end else begin
            if (fire) cf <= (cf == CF_LAST) ? {TA_BITS{1'b0}} : cf + 1'b1;
            if (fire) x_valid <= 1'b1;
            else if (m_free) x_valid <= 1'b0;
            if (x_valid && m_free) m_valid <= 1'b1;
            else if (m_axis_tready) m_valid <= 1'b0;
        end
    end
endmodule

`timescale 1ns/1ps
// concat_stream: channel concatenation of two streams per pixel (SqueezeNet's fire).
//
// Output per pixel: the C0/ELEMS beats of that pixel from s0, then the C1/ELEMS beats
// from s1, repeating forever; output channel c < C0 is input-0 channel c, channel
// C0 + c is input-1 channel c. Each element is sign-extended (SIGNED0/SIGNED1 = 1) or
// zero-extended to OUT_BITS (>= BITS0, BITS1). More than two inputs: chain units.
//
// Parameters: C0, C1 (channels of the inputs), ELEMS (elements per beat, divides C0 and
// C1), BITS0, SIGNED0, BITS1, SIGNED1, OUT_BITS.
// Ports: s0_axis_* (ELEMS*BITS0), s1_axis_* (ELEMS*BITS1), m_axis_* (ELEMS*OUT_BITS),
// element 0 at the LSBs. sN_axis_tready = output register free && it is input N's turn
// (registered state), never a function of the inputs' tvalid.
//
// Throughput: one output beat per cycle (each input is read only in its share of the
// cycles: C0/(C0+C1) and C1/(C0+C1)). Latency: 1 cycle (a beat accepted at clock edge t
// is on m_axis after edge t and can be taken at edge t+1 at the earliest).
module concat_stream #(
    parameter integer C0 = 2,
    parameter integer C1 = 2,
    parameter integer ELEMS = 1,
    parameter integer BITS0 = 4,
    parameter integer SIGNED0 = 0,
    parameter integer BITS1 = 4,
    parameter integer SIGNED1 = 0,
    parameter integer OUT_BITS = 4
) (
    input  wire                      clk,
    input  wire                      rst_n,
    input  wire [ELEMS*BITS0-1:0]    s0_axis_tdata,
    input  wire                      s0_axis_tvalid,
    output wire                      s0_axis_tready,
    input  wire [ELEMS*BITS1-1:0]    s1_axis_tdata,
    input  wire                      s1_axis_tvalid,
    output wire                      s1_axis_tready,
    output wire [ELEMS*OUT_BITS-1:0] m_axis_tdata,
    output wire                      m_axis_tvalid,
    input  wire                      m_axis_tready
);
    localparam integer N0 = C0 / ELEMS;
    localparam integer N1 = C1 / ELEMS;
    localparam integer NB = (N0 > N1) ? N0 : N1;
    localparam integer CB = (NB > 1) ? $clog2(NB) : 1;
    localparam integer N0_L = N0 - 1;
    localparam integer N1_L = N1 - 1;
    localparam [CB-1:0] LAST0 = N0_L[CB-1:0];
    localparam [CB-1:0] LAST1 = N1_L[CB-1:0];

    reg                      sel;      // 0: taking from s0, 1: from s1
    reg [CB-1:0]             cnt;      // beat within the current input's share
    reg                      m_valid;
    reg [ELEMS*OUT_BITS-1:0] m_data;
    wire [ELEMS*OUT_BITS-1:0] ext0, ext1;

    wire m_free = !m_valid || m_axis_tready;
    assign s0_axis_tready = m_free && !sel;
    assign s1_axis_tready = m_free && sel;
    wire fire0 = s0_axis_tvalid && s0_axis_tready;
    wire fire1 = s1_axis_tvalid && s1_axis_tready;
    wire fire = fire0 || fire1;
    wire last = sel ? (cnt == LAST1) : (cnt == LAST0);
    assign m_axis_tvalid = m_valid;
    assign m_axis_tdata = m_data;

    genvar i;
    generate
        for (i = 0; i < ELEMS; i = i + 1) begin : g_elem
            wire [BITS0-1:0] a = s0_axis_tdata[i*BITS0 +: BITS0];
            wire [BITS1-1:0] b = s1_axis_tdata[i*BITS1 +: BITS1];
            if (BITS0 == OUT_BITS) begin : g_a_same
                assign ext0[i*OUT_BITS +: OUT_BITS] = a;
            end else if (SIGNED0 != 0) begin : g_a_sext
                assign ext0[i*OUT_BITS +: OUT_BITS] = {{(OUT_BITS-BITS0){a[BITS0-1]}}, a};
            end else begin : g_a_zext
                assign ext0[i*OUT_BITS +: OUT_BITS] = {{(OUT_BITS-BITS0){1'b0}}, a};
            end
            if (BITS1 == OUT_BITS) begin : g_b_same
                assign ext1[i*OUT_BITS +: OUT_BITS] = b;
            end else if (SIGNED1 != 0) begin : g_b_sext
                assign ext1[i*OUT_BITS +: OUT_BITS] = {{(OUT_BITS-BITS1){b[BITS1-1]}}, b};
            end else begin : g_b_zext
                assign ext1[i*OUT_BITS +: OUT_BITS] = {{(OUT_BITS-BITS1){1'b0}}, b};
            end
        end
    endgenerate

    always @(posedge clk) begin
        if (fire) m_data <= sel ? ext1 : ext0;
    end

    always @(posedge clk) begin
        if (!rst_n) begin
            sel <= 1'b0;
            cnt <= {CB{1'b0}};
            m_valid <= 1'b0;
        end else begin
            if (fire) begin
                if (last) begin
                    cnt <= {CB{1'b0}};
                    sel <= !sel;
                end else begin
                    cnt <= cnt + 1'b1;
                end
            end
            if (fire) m_valid <= 1'b1;
            else if (m_axis_tready) m_valid <= 1'b0;
        end
    end
endmodule

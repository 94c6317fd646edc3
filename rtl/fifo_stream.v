`timescale 1ns/1ps
// fifo_stream: AXI-Stream FIFO of WIDTH-bit words.
//
// A memory of DEPTH words (one write port, one synchronous read port with enable, no
// reset: block RAM when DEPTH*WIDTH is large, distributed RAM / registers otherwise)
// feeds the output register q, which is both the memory's read register and m_axis_tdata.
// A word is read from the memory into q whenever the memory holds one and q is empty or
// being taken.
//
// Capacity: exactly DEPTH words in the memory plus one in the output register, so with
// the output stalled the FIFO accepts DEPTH + 1 words before s_axis_tready falls.
// s_axis_tready = !full, a register (full: the memory holds DEPTH words), independent of
// m_axis_tready and s_axis_tvalid.
//
// Parameters: WIDTH (bits per word), DEPTH (memory words, >= 2; any value, not only
// powers of two).
// Throughput: one word per cycle in and out (sustained unless the memory is full, when
// a word leaving frees its slot for the next cycle). Latency: 2 cycles through an empty
// FIFO (a word accepted at clock edge t is written to the memory at t, read into q at
// edge t+1, and can be taken at edge t+2 at the earliest).
module fifo_stream #(
    parameter integer WIDTH = 8,
    parameter integer DEPTH = 2
) (
    input  wire             clk,
    input  wire             rst_n,
    input  wire [WIDTH-1:0] s_axis_tdata,
    input  wire             s_axis_tvalid,
    output wire             s_axis_tready,
    output wire [WIDTH-1:0] m_axis_tdata,
    output wire             m_axis_tvalid,
    input  wire             m_axis_tready
);
    localparam integer AB = $clog2(DEPTH);
    localparam integer CB = $clog2(DEPTH + 1);
    localparam integer A_L = DEPTH - 1;
    localparam [AB-1:0] A_LAST = A_L[AB-1:0];
    localparam [CB-1:0] FULL_COUNT = DEPTH[CB-1:0];

    reg [WIDTH-1:0] mem [0:DEPTH-1];
    reg [WIDTH-1:0] q;
    reg [AB-1:0]    wptr, rptr;
    reg [CB-1:0]    count;      // words in the memory (not counting q)
    reg             full;
    reg             m_valid;
    reg [CB-1:0]    count_next;

    assign s_axis_tready = !full;
    wire wen = s_axis_tvalid && !full;
    wire ren = (count != {CB{1'b0}}) && (!m_valid || m_axis_tready);
    assign m_axis_tvalid = m_valid;
    assign m_axis_tdata = q;

    always @* begin
        count_next = count;
        if (wen && !ren) count_next = count + 1'b1;
        if (ren && !wen) count_next = count - 1'b1;
    end

    always @(posedge clk) begin
        if (wen) mem[wptr] <= s_axis_tdata;
    end

    always @(posedge clk) begin
        if (ren) q <= mem[rptr];
    end

    always @(posedge clk) begin
        if (!rst_n) begin
            wptr <= {AB{1'b0}};
            rptr <= {AB{1'b0}};
            count <= {CB{1'b0}};
            full <= 1'b0;
            m_valid <= 1'b0;
        end else begin
            if (wen) wptr <= (wptr == A_LAST) ? {AB{1'b0}} : wptr + 1'b1;
            if (ren) rptr <= (rptr == A_LAST) ? {AB{1'b0}} : rptr + 1'b1;
            count <= count_next;
            full <= (count_next == FULL_COUNT);
            if (ren) m_valid <= 1'b1;
            else if (m_axis_tready) m_valid <= 1'b0;
        end
    end
endmodule

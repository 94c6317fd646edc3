`timescale 1ns/1ps
// fork_stream: broadcast one AXI-Stream to N consumers.
//
// Every output sees every input beat exactly once and in order. The beat sits in one
// data register shared by all outputs (m_axis_tdata) with one pending flag per output
// (m_axis_tvalid[n]); output n clears its flag when it accepts, at its own pace. The
// next beat is accepted once every output has taken the current one or takes it in the
// same cycle: s_axis_tready = AND over n of (!pending[n] || m_axis_tready[n]), which
// depends on registered state and the outputs' tready only.
//
// Parameters: N (outputs, 2..8), WIDTH (bits per beat).
// Ports: s_axis_tdata[WIDTH-1:0], s_axis_tvalid, s_axis_tready; m_axis_tdata[WIDTH-1:0]
// (one bus for all outputs), m_axis_tvalid[N-1:0], m_axis_tready[N-1:0].
//
// Throughput: one beat per cycle when all outputs are ready. Latency: 1 cycle (a beat
// accepted at clock edge t is on every output after edge t, taken at edge t+1 at the
// earliest).
module fork_stream #(
    parameter integer N = 2,
    parameter integer WIDTH = 8
) (
    input  wire             clk,
    input  wire             rst_n,
    input  wire [WIDTH-1:0] s_axis_tdata,
    input  wire             s_axis_tvalid,
    output wire             s_axis_tready,
    output wire [WIDTH-1:0] m_axis_tdata,
    output wire [N-1:0]     m_axis_tvalid,
    input  wire [N-1:0]     m_axis_tready
);
    reg [N-1:0]     pending;
    reg [WIDTH-1:0] data;

    assign s_axis_tready = &(~pending | m_axis_tready);
    wire fire = s_axis_tvalid && s_axis_tready;
    assign m_axis_tvalid = pending;
    assign m_axis_tdata = data;

    always @(posedge clk) begin
        if (fire) data <= s_axis_tdata;
    end

    always @(posedge clk) begin
        if (!rst_n) pending <= {N{1'b0}};
        else if (fire) pending <= {N{1'b1}};
        else pending <= pending & ~m_axis_tready;
    end
endmodule

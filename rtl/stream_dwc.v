`timescale 1ns/1ps
// stream_dwc: AXI-Stream width converter, IN_ELEMS -> OUT_ELEMS elements of EBITS bits.
//
// Keeps element order across beats and frames (element 0 at the LSBs, as FINN). Any pair
// of counts works; a buffer of IN_ELEMS + OUT_ELEMS elements sustains one input beat per
// cycle when OUT_ELEMS >= IN_ELEMS and one output beat per cycle otherwise. Equal counts
// are a wire. tready depends on internal state only.
module stream_dwc #(
    parameter integer EBITS = 2,
    parameter integer IN_ELEMS = 1,
    parameter integer OUT_ELEMS = 1
) (
    input  wire                       clk,
    input  wire                       rst_n,
    input  wire [IN_ELEMS*EBITS-1:0]  s_axis_tdata,
    input  wire                       s_axis_tvalid,
    output wire                       s_axis_tready,
    output wire [OUT_ELEMS*EBITS-1:0] m_axis_tdata,
    output wire                       m_axis_tvalid,
    input  wire                       m_axis_tready
);
    generate
        if (IN_ELEMS == OUT_ELEMS) begin : g_wire
            assign m_axis_tdata = s_axis_tdata;
            assign m_axis_tvalid = s_axis_tvalid;
            assign s_axis_tready = m_axis_tready;
        end else begin : g_buffer
            localparam integer CAP = IN_ELEMS + OUT_ELEMS;
            reg [CAP*EBITS-1:0] data;
            reg [31:0] count;
            wire pop = (count >= OUT_ELEMS) && m_axis_tready;
            wire push = s_axis_tvalid && s_axis_tready;
            wire [31:0] kept = pop ? count - OUT_ELEMS : count;
            reg [CAP*EBITS-1:0] next;
            assign s_axis_tready = (count + IN_ELEMS <= CAP);
            assign m_axis_tvalid = (count >= OUT_ELEMS);
            assign m_axis_tdata = data[OUT_ELEMS*EBITS-1:0];
            always @* begin
                next = pop ? (data >> (OUT_ELEMS*EBITS)) : data;
                if (push) next[kept*EBITS +: IN_ELEMS*EBITS] = s_axis_tdata;
            end
            always @(posedge clk) begin
                if (!rst_n) begin
                    count <= 0;
                    data <= {CAP*EBITS{1'b0}};
                end else begin
                    data <= next;
                    count <= kept + (push ? IN_ELEMS : 0);
                end
            end
        end
    endgenerate
endmodule

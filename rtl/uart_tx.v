`timescale 1ns/1ps
// uart_tx: 8N1 UART transmitter (1 start bit, 8 data bits LSB first, 1 stop bit, no parity).
//
// A byte accepted on s_axis (tvalid && tready) is sent as 10 bits of CLKS_PER_BIT cycles
// each; tx idles high. s_axis_tready is high while the transmitter is idle and comes from
// a register (it does not depend on s_axis_tvalid). Throughput: one byte every
// 10 * CLKS_PER_BIT + 1 cycles when the input is always valid; the start bit appears on
// tx one cycle after the handshake. tx is a register (no glitches on the line).
// CLKS_PER_BIT = clock frequency / baud rate, at least 2.
module uart_tx #(
    parameter integer CLKS_PER_BIT = 104
) (
    input  wire       clk,
    input  wire       rst_n,
    input  wire [7:0] s_axis_tdata,
    input  wire       s_axis_tvalid,
    output reg        s_axis_tready,
    output reg        tx
);
    localparam integer CW = $clog2(CLKS_PER_BIT + 1);
    localparam integer LAST_I = CLKS_PER_BIT - 1;
    localparam [CW-1:0] LAST = LAST_I[CW-1:0];  // last cycle of a bit

    reg [8:0] shift;  // data bits then the stop bit, sent from bit 0
    reg [3:0] bits_left;  // bits still to send after the one on the line
    reg [CW-1:0] count;

    always @(posedge clk) begin
        if (!rst_n) begin
            s_axis_tready <= 1'b1;
            tx <= 1'b1;
            bits_left <= 4'd0;
            count <= {CW{1'b0}};
        end else if (s_axis_tready) begin
            if (s_axis_tvalid) begin
                s_axis_tready <= 1'b0;
                tx <= 1'b0;  // start bit
                shift <= {1'b1, s_axis_tdata};
                bits_left <= 4'd9;
                count <= {CW{1'b0}};
            end
        end else if (count != LAST) begin
            count <= count + 1'b1;
        end else begin
            count <= {CW{1'b0}};
            if (bits_left == 4'd0) begin
                s_axis_tready <= 1'b1;  // the stop bit has had its full time
            end else begin
                tx <= shift[0];
                shift <= {1'b1, shift[8:1]};
                bits_left <= bits_left - 1'b1;
            end
        end
    end
endmodule

`timescale 1ns/1ps
// uart_rx: 8N1 UART receiver (1 start bit, 8 data bits LSB first, 1 stop bit, no parity).
//
// The line is brought into the clock domain by two flip-flops, a falling edge starts a
// byte, the start bit is confirmed at its middle (a shorter low pulse is a glitch and
// ignored), and each data bit and the stop bit are sampled CLKS_PER_BIT cycles apart
// from there, i.e. in the middle of the bit. A byte whose stop bit reads 0 (framing
// error, or a break) is dropped, and the receiver waits for the line to go high before it
// looks for the next start bit.
//
// Output: m_axis_tdata holds the byte and m_axis_tvalid is high for exactly one cycle per
// byte. A UART line has no flow control, so there is no tready: the consumer must take the
// byte in that cycle (bytes arrive at most every 10 * CLKS_PER_BIT cycles).
// Latency: the byte is valid 2 (synchronizer) + 1 cycles after the middle of the stop bit.
// CLKS_PER_BIT = clock frequency / baud rate, at least 4.
module uart_rx #(
    parameter integer CLKS_PER_BIT = 104
) (
    input  wire       clk,
    input  wire       rst_n,
    input  wire       rx,
    output reg  [7:0] m_axis_tdata,
    output reg        m_axis_tvalid
);
    localparam integer CW = $clog2(CLKS_PER_BIT + 1);
    localparam integer LAST_I = CLKS_PER_BIT - 1;
    localparam integer HALF_I = (CLKS_PER_BIT - 1) / 2;
    localparam [CW-1:0] LAST = LAST_I[CW-1:0];  // last cycle of a bit
    localparam [CW-1:0] HALF = HALF_I[CW-1:0];  // middle of the start bit
    localparam [1:0] IDLE = 2'd0, START = 2'd1, DATA = 2'd2, STOP = 2'd3;

    reg rx_meta;
    reg rx_sync;
    reg [1:0] state;
    reg [CW-1:0] count;
    reg [2:0] bit_index;
    reg waiting_high;  // after a framing error: ignore the line until it is high again

    always @(posedge clk) begin
        if (!rst_n) begin
            rx_meta <= 1'b1;
            rx_sync <= 1'b1;
            state <= IDLE;
            count <= {CW{1'b0}};
            bit_index <= 3'd0;
            waiting_high <= 1'b0;
            m_axis_tvalid <= 1'b0;
        end else begin
            rx_meta <= rx;
            rx_sync <= rx_meta;
            m_axis_tvalid <= 1'b0;
            case (state)
                IDLE: begin
                    count <= {CW{1'b0}};
                    if (waiting_high) begin
                        waiting_high <= !rx_sync;
                    end else if (!rx_sync) begin
                        state <= START;
                    end
                end
                START: begin
                    if (count == HALF) begin
                        count <= {CW{1'b0}};
                        bit_index <= 3'd0;
                        state <= rx_sync ? IDLE : DATA;
                    end else begin
                        count <= count + 1'b1;
                    end
                end
                DATA: begin
                    if (count == LAST) begin
                        count <= {CW{1'b0}};
                        m_axis_tdata <= {rx_sync, m_axis_tdata[7:1]};
                        bit_index <= bit_index + 1'b1;
                        if (bit_index == 3'd7) state <= STOP;
                    end else begin
                        count <= count + 1'b1;
                    end
                end
                default: begin  // STOP
                    if (count == LAST) begin
                        count <= {CW{1'b0}};
                        m_axis_tvalid <= rx_sync;
                        waiting_high <= !rx_sync;
                        state <= IDLE;
                    end else begin
                        count <= count + 1'b1;
                    end
                end
            endcase
        end
    end
endmodule

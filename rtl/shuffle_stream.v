`timescale 1ns/1ps
// shuffle_stream: ShuffleNet's channel shuffle within each pixel.
//
// Frames are pixels of C channels, ELEMS channels per beat (element 0 at the LSBs),
// CF = C/ELEMS beats per pixel in and out. Output channel j of a pixel is input channel
//   (j mod G) * (C/G) + floor(j / G)
// i.e. the C/G x G transpose of the G groups of C/G channels.
//
// Parameters: C (channels), G (groups, divides C), ELEMS (elements per beat, divides C),
// EBITS (bits per element; the data is moved, never interpreted).
//
// Storage: two pixel buffers of C elements (registers, ping-pong). Each element is
// written straight to its output position (every output channel has one fixed source
// beat and element, so the write side needs no multiplexer); a full buffer is read out
// beat by beat while the next pixel fills the other one.
//
// Throughput: one beat per cycle, in and out. Latency: the first output beat of a pixel
// is on m_axis one cycle after the pixel's last input beat was accepted (accepted at
// clock edge t, on m_axis after edge t+1, taken at edge t+2 at the earliest).
// s_axis_tready depends on registered state only.
module shuffle_stream #(
    parameter integer C = 4,
    parameter integer G = 2,
    parameter integer ELEMS = 1,
    parameter integer EBITS = 4
) (
    input  wire                   clk,
    input  wire                   rst_n,
    input  wire [ELEMS*EBITS-1:0] s_axis_tdata,
    input  wire                   s_axis_tvalid,
    output wire                   s_axis_tready,
    output wire [ELEMS*EBITS-1:0] m_axis_tdata,
    output wire                   m_axis_tvalid,
    input  wire                   m_axis_tready
);
    localparam integer CF = C / ELEMS;
    localparam integer CG = C / G;                 // channels per group
    localparam integer DW = ELEMS * EBITS;
    localparam integer CFB = (CF > 1) ? $clog2(CF) : 1;
    localparam integer CF_L = CF - 1;
    localparam [CFB-1:0] CF_LAST = CF_L[CFB-1:0];

    reg [1:0]     full;       // pixel buffer b holds a complete pixel
    reg           wsel, rsel; // buffer being written / read
    reg [CFB-1:0] wcf, rcf;   // beat within the pixel being written / read
    reg           m_valid;
    reg [DW-1:0]  m_data;
    wire [C*EBITS-1:0] flat0, flat1;   // the two buffers, in output channel order

    assign s_axis_tready = !full[wsel];
    wire wfire = s_axis_tvalid && !full[wsel];
    wire m_free = !m_valid || m_axis_tready;
    wire rfire = full[rsel] && m_free;
    assign m_axis_tvalid = m_valid;
    assign m_axis_tdata = m_data;

    genvar j;
    generate
        for (j = 0; j < C; j = j + 1) begin : g_ch
            // output channel j comes from input channel SRC = beat SRC_BEAT, element SRC_E
            localparam integer SRC = (j % G) * CG + j / G;
            localparam integer SRC_E = SRC % ELEMS;
            localparam integer SRC_BEAT = SRC / ELEMS;
            localparam [CFB-1:0] BEAT = SRC_BEAT[CFB-1:0];
            reg [EBITS-1:0] b0, b1;
            wire hit = wfire && (wcf == BEAT);
            always @(posedge clk) begin
                if (hit && !wsel) b0 <= s_axis_tdata[SRC_E*EBITS +: EBITS];
                if (hit && wsel) b1 <= s_axis_tdata[SRC_E*EBITS +: EBITS];
            end
            assign flat0[j*EBITS +: EBITS] = b0;
            assign flat1[j*EBITS +: EBITS] = b1;
        end
    endgenerate

    always @(posedge clk) begin
        if (rfire) m_data <= rsel ? flat1[rcf*DW +: DW] : flat0[rcf*DW +: DW];
    end

    always @(posedge clk) begin
        if (!rst_n) begin
            full <= 2'b00;
            wsel <= 1'b0;
            rsel <= 1'b0;
            wcf <= {CFB{1'b0}};
            rcf <= {CFB{1'b0}};
            m_valid <= 1'b0;
        end else begin
            if (wfire) begin
                if (wcf == CF_LAST) begin
                    wcf <= {CFB{1'b0}};
                    wsel <= !wsel;
                end else begin
                    wcf <= wcf + 1'b1;
                end
            end
            if (rfire) begin
                if (rcf == CF_LAST) begin
                    rcf <= {CFB{1'b0}};
                    rsel <= !rsel;
                end else begin
                    rcf <= rcf + 1'b1;
                end
            end
            // a buffer fills on its last write and empties on its last read; the two
            // never concern the same buffer in one cycle
            if (wfire && wcf == CF_LAST) full[wsel] <= 1'b1;
            if (rfire && rcf == CF_LAST) full[rsel] <= 1'b0;
            if (rfire) m_valid <= 1'b1;
            else if (m_axis_tready) m_valid <= 1'b0;
        end
    end
endmodule

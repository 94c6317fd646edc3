`timescale 1ns/1ps
// uart_top: a generated accelerator (qfab_top) behind a UART, for boards without a host bus.
//
// Byte protocol (8N1, CLKS_PER_BIT clocks per bit; boards/uart_client.py speaks it):
//   host -> board: one frame = FEATURES_IN bytes, input element i of the frame (NHWC order)
//     in byte i, as its IN_BITS-bit integer (unsigned, or two's complement when the input
//     is signed) in the byte's low IN_BITS bits; the upper bits are ignored.
//   board -> host, once the frame's result is out of qfab_top:
//     byte 0: the class = index of the largest output integer; the first index wins a tie
//       (the rule of numpy.argmax, which golden and the client use);
//     then OUT_ELEMS * OUT_BEATS integers (the last layer's accumulators), element 0 first,
//       each OUT_BYTES bytes, little-endian, sign-extended (OUT_SIGNED) or zero-extended.
//   The host waits for a frame's reply before it sends the next frame: the line has no
//   flow control, and the input buffer below holds one frame, not two.
//   Resynchronization (idle timeout): a frame's bytes must follow each other without a
//   pause; when a frame is partly received and no byte arrives for IDLE_BYTES byte times
//   (IDLE_BYTES * 10 * CLKS_PER_BIT cycles), the partial frame is discarded (its beats
//   never reach qfab_top) and the next byte starts a new frame. So a lost byte, a client
//   that died mid-frame or a port opened mid-frame costs at most that frame: the host
//   (which empties its receive buffer on open and after a timeout) pauses and resends.
//   A frame that is complete but shifted (an extra byte ahead of it) cannot be told from
//   a good one: its reply is wrong, and its last byte, left over, is discarded by the
//   timeout, so the frames after it are right again.
//
// Input side: each received byte's low IN_BITS bits shift into a beat register from the
// top, so after IN_ELEMS bytes element 0 sits at the least significant bits, exactly the
// s_axis packing of qfab_top (upper TDATA bits, IN_TDATA_W - IN_ELEMS * IN_BITS of them,
// are zero). Complete beats are written into a frame buffer of IN_BEATS words (a whole
// frame), which releases them to qfab_top only once the frame's last beat is in: the
// idle timeout then only has to move the buffer's write pointer back to forget a partial
// frame. qfab_top is empty when a frame starts, so however long it stalls its input while
// computing, no byte of the frame is lost.
// Output side: qfab_top's beats shift into a frame register until m_axis_tlast
// (m_axis_tready is high only while collecting); the class is found in OUT_ELEMS *
// OUT_BEATS cycles by rotating the frame register (no wide multiplexer), then the bytes go
// to uart_tx. Reset: a power-on reset (iCE40 flip-flops start at 0, so a 4-bit counter
// holds the design in reset for its first 16 cycles) or rst_n low (a button:
// synchronized here, active low), whichever is active.
// Throughput: one frame per (FEATURES_IN + 1 + FEATURES_OUT * OUT_BYTES) * 10 bit times
// plus the accelerator's latency (counted from the frame's last byte: the accelerator
// sees none of a frame before all of it has arrived).
module uart_top #(
    parameter integer CLKS_PER_BIT = 104,
    // idle timeout: a partial frame is discarded after IDLE_BYTES byte times (10 bits each)
    // without a byte
    parameter integer IDLE_BYTES = 3,
    parameter integer IN_ELEMS = 8,  // elements per s_axis beat
    parameter integer IN_BITS = 8,  // bits per input element (<= 8)
    parameter integer IN_TDATA_W = 64,  // s_axis_tdata width of qfab_top
    parameter integer IN_BEATS = 8,  // s_axis beats per frame
    parameter integer OUT_ELEMS = 5,  // elements per m_axis beat
    parameter integer OUT_BITS = 8,  // bits per output element
    parameter integer OUT_BEATS = 2,  // m_axis beats per frame
    parameter integer OUT_TDATA_W = 40,  // m_axis_tdata width of qfab_top
    parameter integer OUT_SIGNED = 1,  // output elements are two's complement
    parameter integer OUT_BYTES = 1  // bytes per output element on the line
) (
    input  wire clk,
    input  wire rst_n,
    input  wire rx,
    output wire tx
);
    localparam integer IN_W = IN_ELEMS * IN_BITS;
    localparam integer OUT_W = OUT_ELEMS * OUT_BITS;
    localparam integer FEATS = OUT_ELEMS * OUT_BEATS;
    localparam integer FRAME_W = FEATS * OUT_BITS;
    localparam integer EXT_W = OUT_BYTES * 8;
    localparam integer ICW = $clog2(IN_ELEMS + 1);
    localparam integer IN_DEPTH = (IN_BEATS > 2) ? IN_BEATS : 2;  // frame buffer beats
    localparam integer AB = $clog2(IN_DEPTH);
    localparam integer CB = $clog2(IN_DEPTH + 1);
    localparam integer A_LAST_I = IN_DEPTH - 1;
    localparam [AB-1:0] A_LAST = A_LAST_I[AB-1:0];
    localparam [CB-1:0] FULL_COUNT = IN_DEPTH[CB-1:0];
    localparam integer FBW = $clog2(IN_BEATS + 1);
    localparam integer FRAME_LAST_I = IN_BEATS - 1;
    localparam [FBW-1:0] FRAME_LAST = FRAME_LAST_I[FBW-1:0];
    localparam integer IDLE_CLKS = IDLE_BYTES * 10 * CLKS_PER_BIT;  // the idle timeout
    localparam integer IDW = $clog2(IDLE_CLKS + 1);
    localparam [IDW-1:0] IDLE_LAST = IDLE_CLKS[IDW-1:0];
    localparam integer IN_LAST_I = IN_ELEMS - 1;
    localparam integer LAST_ELEM_I = FEATS - 1;
    localparam integer LAST_BYTE_I = OUT_BYTES - 1;
    localparam [ICW-1:0] IN_LAST = IN_LAST_I[ICW-1:0];
    localparam [7:0] LAST_ELEM = LAST_ELEM_I[7:0];  // FEATS <= 256 (checked by the generator)
    localparam [2:0] LAST_BYTE = LAST_BYTE_I[2:0];  // OUT_BYTES <= 8
    localparam [2:0] COLLECT = 3'd0, ARGMAX = 3'd1, SEND_CLASS = 3'd2, LOAD = 3'd3,
        SEND_ELEM = 3'd4;

    // ---- reset: power-on counter and the synchronized button ----
    reg [3:0] por_count;
    reg btn_meta;
    reg btn_sync;
    reg run;  // the internal active-low reset
    initial begin  // configuration values (yosys maps them to the flip-flops' init)
        por_count = 4'd0;
        btn_meta = 1'b0;
        btn_sync = 1'b0;
        run = 1'b0;
    end
    always @(posedge clk) begin
        btn_meta <= rst_n;
        btn_sync <= btn_meta;
        if (por_count != 4'hf) por_count <= por_count + 1'b1;
        run <= (por_count == 4'hf) && btn_sync;
    end

    // ---- input: bytes -> s_axis beats ----
    // verilator lint_off UNUSEDSIGNAL
    wire [7:0] rx_byte;  // only the low IN_BITS bits carry the element
    // verilator lint_on UNUSEDSIGNAL
    wire rx_valid;
    uart_rx #(.CLKS_PER_BIT(CLKS_PER_BIT)) u_rx (
        .clk(clk),
        .rst_n(run),
        .rx(rx),
        .m_axis_tdata(rx_byte),
        .m_axis_tvalid(rx_valid)
    );

    reg [IN_W-1:0] beat_q;  // the frame buffer's read register = s_axis_tdata (below)
    reg beat_q_valid;
    reg [ICW-1:0] elem_count;  // bytes of the beat being assembled
    reg [FBW-1:0] frame_beat;  // complete beats of the frame being received
    reg [IDW-1:0] idle;  // cycles since the last byte, while a frame is partly received
    wire in_frame = (elem_count != {ICW{1'b0}}) || (frame_beat != {FBW{1'b0}});
    // the idle timeout: a partial frame and no byte for IDLE_BYTES byte times
    wire discard = in_frame && !rx_valid && (idle == IDLE_LAST);
    wire beat_done = rx_valid && (elem_count == IN_LAST);
    wire frame_done = beat_done && (frame_beat == FRAME_LAST);
    wire [IN_W-1:0] next_assembling;
    wire [IN_TDATA_W-1:0] s_tdata;
    wire s_ready;
    generate
        if (IN_ELEMS == 1) begin : g_in_one
            assign next_assembling = rx_byte[IN_BITS-1:0];
        end else begin : g_in_shift
            // the beat's elements so far, newest at the top; a discarded partial beat needs no
            // clearing: the next beat's IN_ELEMS bytes shift every old element out
            reg [IN_W-IN_BITS-1:0] held;
            assign next_assembling = {rx_byte[IN_BITS-1:0], held};
            always @(posedge clk) begin
                if (rx_valid) held <= next_assembling[IN_W-1:IN_BITS];
            end
        end
        if (IN_TDATA_W == IN_W) begin : g_in_exact
            assign s_tdata = beat_q;
        end else begin : g_in_pad
            assign s_tdata = {{(IN_TDATA_W - IN_W){1'b0}}, beat_q};
        end
    endgenerate

    always @(posedge clk) begin
        if (!run || discard) begin
            elem_count <= {ICW{1'b0}};
            frame_beat <= {FBW{1'b0}};
        end else if (rx_valid) begin
            elem_count <= beat_done ? {ICW{1'b0}} : elem_count + 1'b1;
            if (beat_done) frame_beat <= frame_done ? {FBW{1'b0}} : frame_beat + 1'b1;
        end
    end

    always @(posedge clk) begin
        if (!run || rx_valid || !in_frame) idle <= {IDW{1'b0}};
        else if (idle != IDLE_LAST) idle <= idle + 1'b1;
    end

    // ---- frame buffer: beats are held until their frame is complete ----
    // A memory of IN_DEPTH beats (one frame) with a synchronous read into beat_q (block
    // RAM friendly, as fifo_stream). `used` counts the beats in the memory, `committed` those
    // of complete frames: only committed beats are read out to qfab_top, so a partial frame
    // never reaches it. frame_start is the write pointer where the partial frame began: a
    // discard moves the write pointer back there and forgets the partial beats (used =
    // committed). Under the protocol the memory is empty when a frame starts (the host waits
    // for the reply, which follows the accelerator taking the whole frame); a beat that
    // finds it full (a host sending frames back to back) is dropped.
    reg [IN_W-1:0] frame_mem [0:IN_DEPTH-1];
    reg [AB-1:0] wptr, rptr, frame_start;
    reg [CB-1:0] used, committed;
    wire wen = beat_done && (used != FULL_COUNT);
    wire ren = (committed != {CB{1'b0}}) && (!beat_q_valid || s_ready);
    wire [AB-1:0] wptr_next = !wen ? wptr : (wptr == A_LAST) ? {AB{1'b0}} : wptr + 1'b1;
    wire [CB-1:0] used_kept = used - {{(CB - 1){1'b0}}, ren};
    wire [CB-1:0] used_next = used_kept + {{(CB - 1){1'b0}}, wen};
    wire [CB-1:0] committed_kept = committed - {{(CB - 1){1'b0}}, ren};

    always @(posedge clk) begin
        if (wen) frame_mem[wptr] <= next_assembling;
    end

    always @(posedge clk) begin
        if (ren) beat_q <= frame_mem[rptr];
    end

    always @(posedge clk) begin
        if (!run) begin
            wptr <= {AB{1'b0}};
            rptr <= {AB{1'b0}};
            frame_start <= {AB{1'b0}};
            used <= {CB{1'b0}};
            committed <= {CB{1'b0}};
            beat_q_valid <= 1'b0;
        end else begin
            if (ren) rptr <= (rptr == A_LAST) ? {AB{1'b0}} : rptr + 1'b1;
            if (ren) beat_q_valid <= 1'b1;
            else if (s_ready) beat_q_valid <= 1'b0;
            if (discard) begin  // no byte arrives in this cycle (discard needs !rx_valid)
                wptr <= frame_start;
                used <= committed_kept;
                committed <= committed_kept;
            end else begin
                wptr <= wptr_next;
                used <= used_next;
                if (frame_done) begin
                    committed <= used_next;
                    frame_start <= wptr_next;
                end else begin
                    committed <= committed_kept;
                end
            end
        end
    end

    // ---- the accelerator ----
    // verilator lint_off UNUSEDSIGNAL
    wire [OUT_TDATA_W-1:0] m_tdata;  // bits above OUT_ELEMS * OUT_BITS are padding
    // verilator lint_on UNUSEDSIGNAL
    wire m_valid;
    wire m_last;
    reg [2:0] state;
    qfab_top u_accel (
        .ap_clk(clk),
        .ap_rst_n(run),
        .s_axis_tdata(s_tdata),
        .s_axis_tvalid(beat_q_valid),
        .s_axis_tready(s_ready),
        .m_axis_tdata(m_tdata),
        .m_axis_tvalid(m_valid),
        .m_axis_tready(state == COLLECT),
        .m_axis_tlast(m_last)
    );

    // ---- output: frame register, argmax, bytes out ----
    reg [FRAME_W-1:0] frame;
    wire [FRAME_W-1:0] next_frame;
    wire [FRAME_W-1:0] rotated = {frame[OUT_BITS-1:0], frame[FRAME_W-1:OUT_BITS]};
    wire [OUT_BITS:0] current = {(OUT_SIGNED != 0) & frame[OUT_BITS-1], frame[OUT_BITS-1:0]};
    wire [EXT_W-1:0] current_ext;
    generate
        if (OUT_BEATS == 1) begin : g_out_one
            assign next_frame = m_tdata[OUT_W-1:0];
        end else begin : g_out_shift
            assign next_frame = {m_tdata[OUT_W-1:0], frame[FRAME_W-1:OUT_W]};
        end
        if (EXT_W == OUT_BITS) begin : g_ext_exact
            assign current_ext = frame[OUT_BITS-1:0];
        end else begin : g_ext_wide
            assign current_ext = {{(EXT_W - OUT_BITS){current[OUT_BITS]}}, frame[OUT_BITS-1:0]};
        end
    endgenerate

    reg [OUT_BITS:0] best;
    reg [7:0] index;
    reg [7:0] best_index;
    reg [EXT_W-1:0] sending;
    reg [2:0] byte_index;
    reg [7:0] tx_data;
    reg tx_valid;
    wire tx_ready;

    always @(posedge clk) begin
        if (!run) begin
            state <= COLLECT;
            tx_valid <= 1'b0;
        end else begin
            case (state)
                COLLECT: begin
                    if (m_valid) begin
                        frame <= next_frame;
                        if (m_last) begin
                            index <= 8'd0;
                            state <= ARGMAX;
                        end
                    end
                end
                ARGMAX: begin  // element `index` is at the LSBs of `frame`
                    if (index == 8'd0 || $signed(current) > $signed(best)) begin
                        best <= current;
                        best_index <= index;
                    end
                    frame <= rotated;
                    index <= index + 1'b1;
                    if (index == LAST_ELEM) state <= SEND_CLASS;
                end
                SEND_CLASS: begin
                    if (!tx_valid) begin
                        tx_data <= best_index;
                        tx_valid <= 1'b1;
                    end else if (tx_ready) begin
                        tx_valid <= 1'b0;
                        index <= 8'd0;
                        state <= LOAD;
                    end
                end
                LOAD: begin  // frame is back in order: element `index` at the LSBs
                    sending <= current_ext;
                    frame <= rotated;
                    byte_index <= 3'd0;
                    state <= SEND_ELEM;
                end
                default: begin  // SEND_ELEM
                    if (!tx_valid) begin
                        tx_data <= sending[7:0];
                        tx_valid <= 1'b1;
                        sending <= sending >> 8;
                    end else if (tx_ready) begin
                        tx_valid <= 1'b0;
                        if (byte_index != LAST_BYTE) begin
                            byte_index <= byte_index + 1'b1;
                        end else if (index == LAST_ELEM) begin
                            state <= COLLECT;
                        end else begin
                            index <= index + 1'b1;
                            state <= LOAD;
                        end
                    end
                end
            endcase
        end
    end

    uart_tx #(.CLKS_PER_BIT(CLKS_PER_BIT)) u_tx (
        .clk(clk),
        .rst_n(run),
        .s_axis_tdata(tx_data),
        .s_axis_tvalid(tx_valid),
        .s_axis_tready(tx_ready),
        .tx(tx)
    );
endmodule

`timescale 1ns/1ps
// stream_dwc: AXI-Stream width converter, IN_ELEMS -> OUT_ELEMS elements of EBITS bits.
//
// Keeps element order across beats and frames (element 0 at the LSBs, as FINN). One of
// four structures, chosen by the parameters; none has a variable shift, and every counter
// has the width of what it counts:
//
// - equal (IN_ELEMS == OUT_ELEMS): a wire (clk and rst_n unused).
// - up (OUT_ELEMS = K * IN_ELEMS, K >= 2): a shift register of K-1 input beats (fixed
//   shift by one beat, enable = beat accepted) collects beats 0..K-2 of a word; beat K-1
//   goes with them straight into the output register. A $clog2(K)-bit beat counter marks
//   beat K-1. The shift register refills while a word waits in the output register, so
//   s_axis_tready = (not beat K-1) || output register free.
// - down (IN_ELEMS = K * OUT_ELEMS, K >= 2): an accepted beat puts its slice 0 into the
//   output register and slices 1..K-1 into a shift register of K-1 output beats (fixed
//   shift by one slice) that feeds the output register next; a $clog2(K)-bit counter holds
//   the slices left. s_axis_tready = none left && output register free: the next beat is
//   accepted in the cycle the last slice of the previous one moves out.
// - neither divides the other: a circular buffer of CAP = lcm(IN_ELEMS, OUT_ELEMS)
//   elements. The write position is always a multiple of IN_ELEMS (CAP/IN_ELEMS slots,
//   each loaded whole from s_axis_tdata when its number is the write pointer) and the read
//   position a multiple of OUT_ELEMS (the output register loads one of CAP/OUT_ELEMS fixed
//   words: a CAP/OUT_ELEMS-way mux). The occupancy is counted in units of
//   g = gcd(IN_ELEMS, OUT_ELEMS) ($clog2(CAP/g + 1) bits); s_axis_tready (a free slot) and
//   "word complete" are registers; their next values are computed from the occupancy for
//   all four push/pop combinations, and push/pop only select one.
//
// Parameters: EBITS (bits per element), IN_ELEMS, OUT_ELEMS (elements per beat, >= 1).
// Except in the wire, m_axis_tvalid/m_axis_tdata are registers, and s_axis_tready is a
// register ("neither") or depends on registered state and m_axis_tready (up, down); it
// never depends on s_axis_tvalid. Only control state is reset.
//
// Throughput (input always valid, output always ready): one beat per cycle on the
// narrower side, min(IN_ELEMS, OUT_ELEMS) elements per cycle. equal: one beat per cycle;
// up: one input beat per cycle (an output beat every K cycles); down: one output beat per
// cycle (an input beat every K cycles); neither: one input beat per cycle when
// IN_ELEMS < OUT_ELEMS, one output beat per cycle when IN_ELEMS > OUT_ELEMS. CAP = lcm is
// enough for that: with IN_ELEMS < OUT_ELEMS the occupancy stays <= IN_ELEMS + OUT_ELEMS - g
// <= CAP - IN_ELEMS, so every beat finds its slot free; symmetrically, with IN_ELEMS >
// OUT_ELEMS a whole output word is buffered in every cycle.
// Latency (clock edges from the one accepting the input beat that completes an output word
// to the first one that can take that word): equal 0; up 1; down 1 for slice 0 (slice k
// of a beat follows k cycles later); neither 2 (into the buffer, then the output register).
module stream_dwc #(
    parameter integer EBITS = 2,
    parameter integer IN_ELEMS = 1,
    parameter integer OUT_ELEMS = 1
) (
    // clk and rst_n are unused when IN_ELEMS == OUT_ELEMS (the unit is a wire then);
    // they stay ports so every width converter is instantiated the same way
    /* verilator lint_off UNUSEDSIGNAL */
    input  wire                       clk,
    input  wire                       rst_n,
    /* verilator lint_on UNUSEDSIGNAL */
    input  wire [IN_ELEMS*EBITS-1:0]  s_axis_tdata,
    input  wire                       s_axis_tvalid,
    output wire                       s_axis_tready,
    output wire [OUT_ELEMS*EBITS-1:0] m_axis_tdata,
    output wire                       m_axis_tvalid,
    input  wire                       m_axis_tready
);
    localparam integer IW = IN_ELEMS * EBITS;   // input beat bits
    localparam integer OW = OUT_ELEMS * EBITS;  // output beat bits

    // greatest common divisor (Euclid), for the buffer of the "neither" case
    function integer gcd;
        input integer a;
        input integer b;
        integer x, y, t;
        begin
            x = a;
            y = b;
            while (y != 0) begin
                t = x % y;
                x = y;
                y = t;
            end
            gcd = x;
        end
    endfunction

    generate
        if (IN_ELEMS == OUT_ELEMS) begin : g_wire
            assign m_axis_tdata = s_axis_tdata;
            assign m_axis_tvalid = s_axis_tvalid;
            assign s_axis_tready = m_axis_tready;

        end else if (OUT_ELEMS % IN_ELEMS == 0) begin : g_up
            localparam integer K = OUT_ELEMS / IN_ELEMS;  // input beats per output beat
            localparam integer CB = $clog2(K);
            localparam integer K_L = K - 1;
            localparam [CB-1:0] LAST = K_L[CB-1:0];

            reg [CB-1:0]       cnt;      // input beats of the current word taken so far
            reg [(K-1)*IW-1:0] acc;      // beats 0..K-2 of the current word, beat 0 lowest
            reg [OW-1:0]       m_data;
            reg                m_valid;

            wire last = (cnt == LAST);
            wire m_free = !m_valid || m_axis_tready;
            assign s_axis_tready = !last || m_free;
            wire push = s_axis_tvalid && s_axis_tready;
            assign m_axis_tvalid = m_valid;
            assign m_axis_tdata = m_data;

            if (K == 2) begin : g_one
                always @(posedge clk) begin
                    if (push) acc <= s_axis_tdata;
                end
            end else begin : g_shift
                always @(posedge clk) begin
                    if (push) acc <= {s_axis_tdata, acc[(K-1)*IW-1:IW]};
                end
            end

            always @(posedge clk) begin
                if (push && last) m_data <= {s_axis_tdata, acc};
            end

            always @(posedge clk) begin
                if (!rst_n) begin
                    cnt <= {CB{1'b0}};
                    m_valid <= 1'b0;
                end else begin
                    if (push) cnt <= last ? {CB{1'b0}} : cnt + 1'b1;
                    if (push && last) m_valid <= 1'b1;
                    else if (m_axis_tready) m_valid <= 1'b0;
                end
            end

        end else if (IN_ELEMS % OUT_ELEMS == 0) begin : g_down
            localparam integer K = IN_ELEMS / OUT_ELEMS;  // output beats per input beat
            localparam integer CB = $clog2(K);
            localparam integer K_L = K - 1;
            localparam integer ONE_I = 1;
            localparam [CB-1:0] FULL = K_L[CB-1:0];
            localparam [CB-1:0] ONE = ONE_I[CB-1:0];

            reg [CB-1:0]       left;     // slices of the current beat still in hold
            reg                empty;    // left == 0
            reg [(K-1)*OW-1:0] hold;     // those slices, the next one lowest
            reg [OW-1:0]       m_data;
            reg                m_valid;

            wire m_free = !m_valid || m_axis_tready;
            assign s_axis_tready = m_free && empty;
            wire push = s_axis_tvalid && s_axis_tready;
            wire take = m_free && !empty;
            assign m_axis_tvalid = m_valid;
            assign m_axis_tdata = m_data;

            if (K == 2) begin : g_one
                always @(posedge clk) begin
                    if (push) hold <= s_axis_tdata[IW-1:OW];
                end
            end else begin : g_shift
                always @(posedge clk) begin
                    if (push) hold <= s_axis_tdata[IW-1:OW];
                    else if (take) hold[(K-2)*OW-1:0] <= hold[(K-1)*OW-1:OW];
                end
            end

            always @(posedge clk) begin
                if (push) m_data <= s_axis_tdata[OW-1:0];
                else if (take) m_data <= hold[OW-1:0];
            end

            always @(posedge clk) begin
                if (!rst_n) begin
                    left <= {CB{1'b0}};
                    empty <= 1'b1;
                    m_valid <= 1'b0;
                end else begin
                    if (push) begin
                        left <= FULL;
                        empty <= 1'b0;
                    end else if (take) begin
                        left <= left - 1'b1;
                        empty <= (left == ONE);
                    end
                    if (push || take) m_valid <= 1'b1;
                    else if (m_axis_tready) m_valid <= 1'b0;
                end
            end

        end else begin : g_buffer
            localparam integer G = gcd(IN_ELEMS, OUT_ELEMS);
            localparam integer A = IN_ELEMS / G;      // input beat, in units of G elements
            localparam integer B = OUT_ELEMS / G;     // output beat, in units of G elements
            localparam integer NW = B;                // input slots in the buffer
            localparam integer NR = A;                // output words in the buffer
            localparam integer CAP = A * B * G;       // lcm(IN_ELEMS, OUT_ELEMS) elements
            localparam integer WB = $clog2(NW);
            localparam integer RB = $clog2(NR);
            localparam integer CB = $clog2(A * B + 1);  // occupancy 0..A*B units
            localparam integer NW_L = NW - 1;
            localparam integer NR_L = NR - 1;
            localparam [WB-1:0] W_LAST = NW_L[WB-1:0];
            localparam [RB-1:0] R_LAST = NR_L[RB-1:0];

            reg [CAP*EBITS-1:0] mem;      // slot j: from element j*IN_ELEMS; word r: r*OUT_ELEMS
            reg [WB-1:0]        wp;       // next slot to write
            reg [RB-1:0]        rp;       // next word to read
            reg [CB-1:0]        count;    // buffered elements / G, from word rp on
            reg                 room;     // count <= A*B - A: a free slot at wp
            reg                 whole;    // count >= B: word rp complete
            wire [CB-1:0]       count_if [0:3];  // count, room and whole after {pop, push}
            wire [3:0]          room_if;         // = 0..3, from count alone
            wire [3:0]          whole_if;
            reg [OW-1:0]        m_data;
            reg                 m_valid;
            wire [OW-1:0]       word [0:NR-1];

            wire m_free = !m_valid || m_axis_tready;
            assign s_axis_tready = room;
            wire push = s_axis_tvalid && room;
            wire pop = whole && m_free;
            assign m_axis_tvalid = m_valid;
            assign m_axis_tdata = m_data;

            genvar j;
            for (j = 0; j < NW; j = j + 1) begin : g_slot
                localparam integer J_I = j;
                localparam [WB-1:0] J = J_I[WB-1:0];
                always @(posedge clk) begin
                    if (push && wp == J) mem[j*IW +: IW] <= s_axis_tdata;
                end
            end
            for (j = 0; j < NR; j = j + 1) begin : g_word
                assign word[j] = mem[j*OW +: OW];
            end

            always @(posedge clk) begin
                if (pop) m_data <= word[rp];
            end

            // the next occupancy and flags for every {pop, push} in parallel, so push and pop
            // (s_axis_tvalid, m_axis_tready) only select among them
            genvar k;
            for (k = 0; k < 4; k = k + 1) begin : g_next
                localparam integer D_I = ((k % 2) * A) - ((k / 2) * B);  // change of count
                localparam integer ROOM_I = A * B - A - D_I;  // room after: count <= ROOM_I
                localparam integer WHOLE_I = B - D_I;          // whole after: count >= WHOLE_I
                localparam [CB-1:0] D = D_I[CB-1:0];           // mod 2^CB
                localparam [CB-1:0] ROOM = ROOM_I[CB-1:0];
                localparam [CB-1:0] WHOLE = WHOLE_I[CB-1:0];
                assign count_if[k] = count + D;
                assign room_if[k] = (ROOM_I >= A * B) ? 1'b1 : (count <= ROOM);
                assign whole_if[k] = (WHOLE_I <= 0) ? 1'b1 : (count >= WHOLE);
            end

            always @(posedge clk) begin
                if (!rst_n) begin
                    wp <= {WB{1'b0}};
                    rp <= {RB{1'b0}};
                    count <= {CB{1'b0}};
                    room <= 1'b1;
                    whole <= 1'b0;
                    m_valid <= 1'b0;
                end else begin
                    if (push) wp <= (wp == W_LAST) ? {WB{1'b0}} : wp + 1'b1;
                    if (pop) rp <= (rp == R_LAST) ? {RB{1'b0}} : rp + 1'b1;
                    count <= count_if[{pop, push}];
                    room <= room_if[{pop, push}];
                    whole <= whole_if[{pop, push}];
                    if (pop) m_valid <= 1'b1;
                    else if (m_axis_tready) m_valid <= 1'b0;
                end
            end
        end
    endgenerate
endmodule

// qfab_hls.h: what every generated HLS kernel shares (copied into each design folder).
//
// Streams carry the RTL's AXI-Stream words: hls::stream<ap_uint<ELEMS * BITS>>, element 0
// at the least significant bits, NHWC order (the design's design.json describes them).
// An element is unsigned, two's complement, or bipolar (1 bit: 1 is +1, 0 is -1); the
// helpers below turn an element into its integer value and back, so no kernel repeats
// the encoding rules of qfab.values.Element.
#ifndef QFAB_HLS_H
#define QFAB_HLS_H

#include <ap_int.h>
#include <hls_stream.h>

#ifndef __SYNTHESIS__
#include <cstdio>
#include <cstdlib>
#include <string>
#endif

// Element i of a word of B-bit elements as its integer value (one bit wider than B,
// which holds an unsigned B-bit value, a signed one, and a bipolar +-1 alike).
template <int B, bool SIGNED, bool BIPOLAR, int W>
inline ap_int<B + 1> qfab_get(const ap_uint<W>& word, int i) {
#pragma HLS INLINE
    ap_uint<B> raw = word.range(i * B + B - 1, i * B);
    if (BIPOLAR) return raw[0] ? ap_int<B + 1>(1) : ap_int<B + 1>(-1);
    if (SIGNED) {
        ap_int<B> v = raw;  // reinterpret the bits as two's complement
        return v;
    }
    return raw;
}

// Element i of a word set to integer value v in B bits (bipolar: 1 for v > 0, else 0;
// otherwise the low B bits, two's complement).
template <int B, bool BIPOLAR, int W, typename T>
inline void qfab_put(ap_uint<W>& word, int i, T v) {
#pragma HLS INLINE
    if (BIPOLAR) {
        word[i] = v > 0 ? 1 : 0;
    } else {
        word.range(i * B + B - 1, i * B) = ap_uint<B>(v);
    }
}

// A memory word of W bits from its 64-bit limbs (least significant first). Constants are
// written as plain integer arrays: g++ compiles them in a fraction of a second, where
// wide ap_uint literals from strings take minutes at CNV's size.
template <int W, int LIMBS>
inline ap_uint<W> qfab_word(const unsigned long long* limbs) {
#pragma HLS INLINE
    ap_uint<W> word = 0;
    for (int l = 0; l < LIMBS; l++) {
#pragma HLS UNROLL
        const int lo = 64 * l;
        const int hi = (lo + 63 < W - 1) ? lo + 63 : W - 1;
        word.range(hi, lo) = limbs[l];
    }
    return word;
}

// Taps: C simulation records every beat a unit equal to a model node writes, so a
// mismatch is located at its first wrong layer (as the RTL bench's taps do). Nothing
// under synthesis.
#ifndef __SYNTHESIS__
extern FILE* qfab_tap_file;
template <int W>
inline void qfab_tap(const char* node, const ap_uint<W>& word) {
    if (qfab_tap_file) std::fprintf(qfab_tap_file, "%s %s\n", node, word.to_string(16, false).c_str());
}
inline void qfab_fail(const char* what) {
    std::fprintf(stderr, "qfab C simulation: %s\n", what);
    std::exit(3);
}
#define QFAB_TAP(node, word) qfab_tap(node, word)
#else
#define QFAB_TAP(node, word)
#endif

#endif

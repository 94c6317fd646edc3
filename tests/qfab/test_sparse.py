"""qfab.sparse: the per-PE CSC layout of the EIE-style engine, and the SparseMVAU op."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qfab.errors import IRError
from qfab.ir import Node
from qfab.ops import OPS
from qfab.sparse import csc_encode, layout_of, layout_tensors, sparse_decode, sparse_encode
from qfab.values import IntRange


def test_eie_paper_column():
    """EIE Sec. III: a column with 1 at row 2, 2 at row 3 and 3 at row 22 is stored as
    v = [1, 2, 0, 3], z = [2, 0, 15, 2] with 4-bit indices (one padding entry)."""
    w = np.zeros((23, 1), np.int64)
    w[2, 0], w[3, 0], w[22, 0] = 1, 2, 3
    m = csc_encode(w, 4)
    assert m.values.tolist() == [1, 2, 0, 3]
    assert m.gaps.tolist() == [2, 0, 15, 2]
    lay = sparse_encode(w, 1)
    assert lay.codebook.tolist() == [0, 1, 2, 3]  # code 0 is the padding zero
    assert lay.code.tolist() == [1, 2, 0, 3]
    assert lay.padding_entries == 1


@settings(max_examples=60, deadline=None)
@given(
    rows=st.integers(1, 40),
    cols=st.integers(1, 30),
    pes=st.integers(1, 12),
    density=st.floats(0.0, 1.0),
    index_bits=st.integers(1, 5),
    seed=st.integers(0, 2**16),
)
def test_round_trip_any_matrix(rows, cols, pes, density, index_bits, seed):
    rng = np.random.default_rng(seed)
    w = rng.integers(-7, 8, (rows, cols)) * (rng.random((rows, cols)) < density)
    lay = sparse_encode(w, pes, index_bits=index_bits)
    assert np.array_equal(sparse_decode(lay), w)
    assert lay.codebook[0] == 0 and np.all(np.diff(lay.codebook[1:]) > 0)
    assert lay.gap.max(initial=0) < 2**index_bits
    assert lay.ptr.shape == (pes, cols + 1) and np.all(np.diff(lay.ptr, axis=1) >= 0)
    assert int(lay.pe_entries.sum()) == len(lay.code)
    # each PE holds exactly its interleaved rows' non-zeros (+ padding)
    for p in range(pes):
        nz = int(np.count_nonzero(w[p::pes]))
        assert int(np.count_nonzero(lay.code[lay.pe_slice(p)])) == nz


def test_degenerate_layouts():
    w = np.zeros((5, 6), np.int64)
    w[4, 2] = 3  # one non-zero: on PE 0 of 4 (row 4), PEs 1..3 own nothing
    lay = sparse_encode(w, 4)
    assert lay.pe_entries.tolist() == [1, 0, 0, 0]
    assert lay.column_work[0].tolist() == [0, 0, 1, 0, 0, 0]  # empty columns cost nothing
    assert np.array_equal(sparse_decode(lay), w)
    few = sparse_encode(np.eye(3, dtype=np.int64), 8)  # fewer rows than PEs
    assert few.pe_entries.tolist() == [1, 1, 1, 0, 0, 0, 0, 0]
    assert [few.pe_rows(p) for p in range(8)] == [1, 1, 1, 0, 0, 0, 0, 0]
    empty = sparse_encode(np.zeros((4, 4), np.int64), 2)
    assert empty.pe_entries.tolist() == [0, 0]
    assert not sparse_decode(empty).any()


def test_shared_codebook_is_kept_and_too_many_values_refused():
    w = np.array([[0, 3, -3], [5, 0, 3]])
    lay = sparse_encode(w, 1, codebook=np.array([-3, 3, 5, 7]))  # 7 unused but kept
    assert lay.codebook.tolist() == [0, -3, 3, 5, 7]
    with pytest.raises(IRError, match=r"weights \[5\] are not in the layer's codebook"):
        sparse_encode(w, 1, codebook=np.array([-3, 3]))
    many = np.arange(-8, 9).reshape(1, -1)  # 16 non-zero values + the zero
    with pytest.raises(IRError, match=r"fc3: 16 distinct non-zero weights .* code_bits = 4"):
        sparse_encode(many, 1, layer="fc3")
    assert len(sparse_encode(many, 1, code_bits=5).codebook) == 17


def test_memories_count_the_words_the_engine_holds():
    w = np.zeros((4, 3), np.int64)
    w[0, 0], w[2, 0], w[1, 2] = 1, -1, 2  # PE 0 (rows 0, 2): 2 entries; PE 1 (row 1): 1
    lay = sparse_encode(w, 2, index_bits=4, code_bits=4)
    mems = {m.name: (m.words, m.bits) for m in lay.memories()}
    assert mems == {
        "pe0_entries": (2, 8),
        "pe0_col_ptr": (4, 2),  # pointers up to 2 entries: 2 bits
        "pe1_entries": (1, 8),
        "pe1_col_ptr": (4, 2),
        "codebook": (4, 3),  # [0, -1, 1, 2] in 3-bit two's complement
    }
    assert lay.memory_bytes() == 1 * 2 + 1 + 1 + 1 + 2
    # PE 0: local row 0 holds 1 (code 2), local row 1 holds -1 (code 1), gaps 0
    assert lay.entry_words(0) == [(2 << 4) | 0, (1 << 4) | 0]


def _engine_node(w: np.ndarray, pes: int, direction=None, bias=None) -> Node:
    lay = sparse_encode(w, pes)
    t = {**layout_tensors(lay), "direction": np.ones(len(w), np.int64)}
    if direction is not None:
        t["direction"] = np.asarray(direction, np.int64)
    if bias is not None:
        t["bias"] = np.asarray(bias, np.int64)
    return Node("fc0", "SparseMVAU", ["input"], {"pes": pes, "pe": 1, "simd": 1}, t)


def test_op_executes_from_the_stored_words_with_direction_and_bias():
    rng = np.random.default_rng(3)
    w = rng.integers(-3, 4, (6, 10)) * (rng.random((6, 10)) < 0.4)
    n = _engine_node(w, 4, direction=[1, -1, 1, 1, -1, 1], bias=[0, 1, 2, 3, 4, 5])
    op = OPS["SparseMVAU"]
    op.validate(n, "test")
    x = rng.integers(0, 8, (5, 10))
    want = (x @ w.T) * np.array([1, -1, 1, 1, -1, 1]) + np.arange(6)
    assert np.array_equal(op.execute(n, [x], [(10,)], (6,)), want)
    r = op.value_range(n, [IntRange.full(10, 0, 7)], [(10,)], (6,))
    out = op.execute(n, [np.full((1, 10), 7), np.zeros((1, 10), np.int64)], [(10,)], (6,))
    assert np.all(r.lo <= out) and np.all(out <= r.hi)
    # a corrupted stored word is what golden computes with: it changes the result
    n.tensors["sparse_code"][0] = (n.tensors["sparse_code"][0] % 3) + 1
    assert not np.array_equal(op.execute(n, [x], [(10,)], (6,)), want)


def test_op_refuses_bad_layouts():
    n = _engine_node(np.eye(4, dtype=np.int64), 2)
    n.tensors["sparse_ptr"] = n.tensors["sparse_ptr"][:1]
    with pytest.raises(IRError, match=r"sparse_ptr must be \[pes = 2"):
        OPS["SparseMVAU"].validate(n, "node 'fc0'")
    n = _engine_node(np.eye(4, dtype=np.int64), 2, direction=[1, 0, 1, 1])
    with pytest.raises(IRError, match="direction values must be"):
        OPS["SparseMVAU"].validate(n, "node 'fc0'")
    n = _engine_node(np.eye(4, dtype=np.int64), 2)
    n.tensors["codebook"] = np.array([1, 2])
    with pytest.raises(IRError, match="starts with 0"):
        OPS["SparseMVAU"].validate(n, "node 'fc0'")
    lay = sparse_encode(np.eye(4, dtype=np.int64), 2)
    bad = layout_tensors(lay)
    bad["sparse_gap"] = bad["sparse_gap"][:-1]
    with pytest.raises(IRError, match="must hold the 4 entries"):
        layout_of(bad, {"pes": 2, "index_bits": 4, "code_bits": 4}, 4)

"""InMemoryBatches: seeded permutations, exact resume, disjoint shards; StreamBatches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kcli.data.batches import InMemoryBatches, StreamBatches


def _data(n=10):
    x = np.arange(n, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)
    return x, np.arange(n)


def _ids(batches, epoch, **kwargs):
    """The sample ids (x[:, 0]) of each batch of an epoch."""
    return [b[0][:, 0].long().tolist() for b in batches.epoch(epoch, **kwargs)]


def test_epoch_covers_every_sample_once_and_len():
    x, y = _data(10)
    batches = InMemoryBatches(x, y, None, batch_size=4, shuffle=True, seed=0, device="cpu")
    assert len(batches) == 3  # ceil(10 / 4)
    ids = _ids(batches, 0)
    assert [len(b) for b in ids] == [4, 4, 2]
    assert sorted(sum(ids, [])) == list(range(10))
    xb, yb, wb = next(iter(batches.epoch(1)))
    assert yb.dtype == torch.long and wb is None
    assert torch.equal(xb[:, 0].long(), yb)  # x and y stay aligned
    assert len(InMemoryBatches(x, y, None, 4, True, 0, "cpu", drop_last=True)) == 2  # 10 // 4


def test_seeded_permutations_differ_per_epoch_and_repeat_per_seed():
    x, y = _data(50)
    a = InMemoryBatches(x, y, None, 50, True, 3, "cpu")
    b = InMemoryBatches(x, y, None, 50, True, 3, "cpu")
    c = InMemoryBatches(x, y, None, 50, True, 4, "cpu")
    a0, a1 = _ids(a, 0), _ids(a, 1)
    assert a0 == _ids(b, 0) and a1 == _ids(b, 1)
    assert a0 != a1
    assert _ids(c, 0) != a0


def test_no_shuffle_keeps_order_and_weights_ride_along():
    x, y = _data(5)
    w = np.array([1, 2, 3, 4, 5], np.float32)
    batches = InMemoryBatches(x, y, w, 2, False, 0, "cpu", y_dtype=torch.float32)
    out = list(batches.epoch(0))
    assert [b[0][:, 0].tolist() for b in out] == [[0, 1], [2, 3], [4]]
    assert out[0][1].dtype == torch.float32 and out[2][2].tolist() == [5.0]


def test_resume_after_save_load_replays_exact_batches(tmp_path):
    x, y = _data(23)
    straight = InMemoryBatches(x, y, None, 5, True, 11, "cpu")
    expected = {e: _ids(straight, e) for e in range(4)}

    first = InMemoryBatches(x, y, None, 5, True, 11, "cpu")
    _ids(first, 0)
    _ids(first, 1)
    torch.save({"data": first.state_dict()}, tmp_path / "ckpt.pt")  # after epoch 1 ended
    state = torch.load(tmp_path / "ckpt.pt", weights_only=True)["data"]

    resumed = InMemoryBatches(x, y, None, 5, True, 11, "cpu")
    resumed.load_state_dict(state)
    assert _ids(resumed, 2) == expected[2] and _ids(resumed, 3) == expected[3]

    # Interrupted in the middle of epoch 2 (after 3 batches): resume from batch 3 of it.
    middle = InMemoryBatches(x, y, None, 5, True, 11, "cpu")
    middle.load_state_dict(state)
    iterator = middle.epoch(2)
    next(iterator)
    torch.save(middle.state_dict(), tmp_path / "mid.pt")
    again = InMemoryBatches(x, y, None, 5, True, 11, "cpu")
    again.load_state_dict(torch.load(tmp_path / "mid.pt", weights_only=True))
    assert _ids(again, 2, start_batch=3) == expected[2][3:]


def test_cannot_go_back_without_a_state():
    x, y = _data(4)
    batches = InMemoryBatches(x, y, None, 2, True, 0, "cpu")
    _ids(batches, 3)
    with pytest.raises(ValueError, match="drawn before"):
        batches.epoch(1)


@pytest.mark.parametrize("drop_last", [False, True])
def test_distributed_ranks_get_disjoint_equal_shards(drop_last):
    x, y = _data(11)
    world = 3
    ranks = [
        InMemoryBatches(
            x, y, None, 2, True, 5, "cpu", rank=r, world_size=world, drop_last=drop_last
        )
        for r in range(world)
    ]
    per_rank = [sum(_ids(b, 0), []) for b in ranks]
    lengths = {len(b) for b in ranks}
    assert len(lengths) == 1  # the same number of batches on every rank
    if drop_last:
        # 11 // 3 = 3 samples each, one partial batch of 1 dropped -> 1 batch of 2 per rank
        assert lengths == {1} and all(len(p) == 2 for p in per_rank)
        seen = sum(per_rank, [])
        assert len(set(seen)) == len(seen)  # disjoint
    else:
        # ceil(11 / 3) = 4 each: 12 slots, the permutation's first index repeated once
        assert lengths == {2} and all(len(p) == 4 for p in per_rank)
        seen = sum(per_rank, [])
        assert set(seen) == set(range(11)) and len(seen) == 12
        single = InMemoryBatches(x, y, None, 11, True, 5, "cpu")
        perm = _ids(single, 0)[0]
        padded = perm + perm[:1]
        # Global batch k is padded[6k : 6k+6] (batch 2 x 3 ranks); rank r takes its r-th pair.
        assert per_rank[0] == padded[0:2] + padded[6:8]
        assert per_rank[2] == padded[4:6] + padded[10:12]


def test_multi_input_dict_batches():
    x = {"a": np.arange(6, dtype=np.float32)[:, None], "b": np.zeros((6, 2, 2), np.float32)}
    batches = InMemoryBatches(x, np.arange(6), None, 4, True, 0, "cpu")
    xb, yb, _ = next(iter(batches.epoch(0)))
    assert xb["b"].shape == (4, 2, 2)
    assert torch.equal(xb["a"][:, 0].long(), yb)


def test_stream_batches_shard_by_groups(tmp_path, load):
    name = f"gen_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(
        "import numpy as np\n"
        "def batches():\n"
        "    for i in range(5):\n"
        "        yield np.full((2, 1), float(i)), np.array([0.5, 0.5])\n"
    )
    splits = load({"source": f"python:{name}:batches"})
    seen = []
    for rank in range(2):
        stream = StreamBatches(splits.train, "cpu", rank=rank, world_size=2)
        seen.append([float(b[0][0, 0]) for b in stream.epoch()])
    # groups (0, 1), (2, 3); batch 4 has no partner and is dropped on both ranks
    assert seen == [[0.0, 2.0], [1.0, 3.0]]
    xb, yb, wb = next(iter(StreamBatches(splits.train, "cpu").epoch()))
    assert xb.dtype == torch.float32 and yb.dtype == torch.float32 and wb is None

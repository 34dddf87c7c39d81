"""Hashing: Keras' bins exactly, from FarmHash64 / SipHash-2-4 of each value's decimal string.

Keras' Hashing cannot run here (it needs TensorFlow), so the references are independent of
kcli: FarmHash64 fingerprints computed with Google's C++ farmhash (the pyfarmhash package,
`farmhash.fingerprint64(str(v))`, which is TensorFlow's Fingerprint64), SipHash's published
test vector, and the bins Keras' own tests (keras/src/layers/preprocessing/hashing_test.py)
expect from its TensorFlow kernels.
"""

import pytest
import torch

from kcli.model.layers import layer_registry
from kcli.model.nn.fingerprint import decimal_strings, farmhash64, siphash24, unsigned_mod

# value -> FarmHash64 of str(value); the decimal lengths cover every branch of the hash
# (1-3, 4-7, 8-16 and 17-32 bytes) and the int64 extremes.
FINGERPRINTS = [
    (0, 0xD2ED96073B81823F),  # 1 byte
    (7, 0x8831601F30043498),
    (-3, 0x03686F56EE858A33),  # 2 bytes
    (42, 0x08A893485641F708),
    (123, 0xD3471144C3EAC34B),  # 3 bytes
    (-999, 0x1DA3F7250099DBC5),  # 4 bytes
    (4096, 0xFD15122D302BF2BA),
    (65536, 0xFF46CAA7BFB31307),  # 5 bytes
    (1234567, 0x66BE0F8DAA9284A7),  # 7 bytes
    (-7654321, 0x431BDF33BD66394E),  # 8 bytes
    (12345678, 0x2F99D2664A0FB6EA),
    (987654321, 0x95A24BA595345A83),  # 9 bytes
    (2147483648, 0x668024AE1D535886),  # 10 bytes
    (-2147483648, 0x5A7D115524F600F5),  # 11 bytes
    (1000000000000, 0x21CFDD9C8C146DC4),  # 13 bytes
    (1000000000000000, 0x0F69F89C822FCF82),  # 16 bytes
    (-1000000000000000, 0xF5DA518A663D624D),  # 17 bytes
    (10000000000000000, 0xD1BDC24C3DB3FFE5),
    (1234567890123456789, 0xC705C75789EA7B96),  # 19 bytes
    (9223372036854775807, 0xB0CCFB1982E491AF),
    (-9223372036854775808, 0x14B9BC6F6D2837E0),  # 20 bytes
]


def as_unsigned(t: torch.Tensor) -> list[int]:
    return [v & (2**64 - 1) for v in t.tolist()]


def byte_rows(strings: list[str], width: int = 24) -> tuple[torch.Tensor, torch.Tensor]:
    data = torch.zeros(len(strings), width, dtype=torch.long)
    for i, s in enumerate(strings):
        data[i, : len(s)] = torch.tensor(list(s.encode()), dtype=torch.long)
    return data, torch.tensor([len(s) for s in strings])


def hashing(data: dict, shape=(1,)):
    return layer_registry.validate_spec({"type": "Hashing", **data}).build([shape])


def test_decimal_strings_are_pythons_str():
    values = [v for v, _ in FINGERPRINTS]
    data, length = decimal_strings(torch.tensor(values))
    rows = [
        "".join(map(chr, row[:n])) for row, n in zip(data.tolist(), length.tolist(), strict=True)
    ]
    assert rows == [str(v) for v in values]


def test_farmhash64_matches_googles_fingerprints():
    values = torch.tensor([v for v, _ in FINGERPRINTS])
    assert as_unsigned(farmhash64(*decimal_strings(values))) == [h for _, h in FINGERPRINTS]


def test_unsigned_modulo_of_the_64_bit_hash():
    values = torch.tensor([v for v, _ in FINGERPRINTS])
    hashes = farmhash64(*decimal_strings(values))
    for n in (1, 2, 3, 1000, 2**31 - 1):
        assert unsigned_mod(hashes, n).tolist() == [h % n for _, h in FINGERPRINTS]


def test_siphash24_matches_the_papers_test_vector():
    # SipHash paper, appendix A: key 00 01 .. 0f, message 00 01 .. 0e -> a129ca6149be45e5.
    data = torch.zeros(1, 24, dtype=torch.long)
    data[0, :15] = torch.arange(15)
    key = (0x0706050403020100, 0x0F0E0D0C0B0A0908)
    assert as_unsigned(siphash24(data, torch.tensor([15]), key)) == [0xA129CA6149BE45E5]


def test_string_hashes_match_keras_tests():
    # hashing_test.py: FarmHash of A..E into 3 bins; SipHash with salts [133, 137] and 133;
    # five names into 2 bins with salts [133, 137] and [211, 137].
    letters = byte_rows(list("ABCDE"))
    assert unsigned_mod(farmhash64(*letters), 3).tolist() == [1, 0, 1, 1, 2]
    assert unsigned_mod(siphash24(*letters, (133, 137)), 3).tolist() == [1, 2, 1, 0, 2]
    assert unsigned_mod(siphash24(*letters, (133, 133)), 3).tolist() == [0, 0, 2, 1, 0]
    names = byte_rows(["omar", "stringer", "marlo", "wire", "skywalker"])
    assert unsigned_mod(farmhash64(*names), 2).tolist() == [0, 0, 1, 0, 0]
    assert unsigned_mod(siphash24(*names, (133, 137)), 2).tolist() == [0, 1, 0, 1, 0]
    assert unsigned_mod(siphash24(*names, (211, 137)), 2).tolist() == [1, 0, 1, 0, 1]


def test_hashing_layer_on_integers_as_keras_tests_expect():
    x = torch.tensor([[0], [1], [2], [3], [4]])
    out = hashing({"num_bins": 3})(x)
    assert out.dtype == torch.int64 and out.tolist() == [[1], [0], [1], [0], [2]]
    assert hashing({"num_bins": 3, "salt": [133, 137]})(x).tolist() == [[1], [1], [2], [0], [1]]
    assert hashing({"num_bins": 1})(x).tolist() == [[0]] * 5
    # Floats are truncated to int64 first (TensorFlow's cast), so 2.9 hashes as 2, -0.5 as 0.
    floats = hashing({"num_bins": 3})(torch.tensor([[2.9], [-0.5], [4.0]]))
    assert floats.tolist() == [[1], [1], [2]]


def test_mask_value_takes_bin_zero_and_shifts_the_rest():
    # num_bins 4 with a mask: values hash into 3 bins, + 1; the mask value itself is bin 0.
    x = torch.tensor([[v] for v, _ in FINGERPRINTS[:8]])
    out = hashing({"num_bins": 4, "mask_value": 42})(x).flatten().tolist()
    expected = [0 if v == 42 else h % 3 + 1 for v, h in FINGERPRINTS[:8]]
    assert out == expected and 0 in out


def test_hashing_output_modes():
    # bins of 0..4 into 3 (above): 1, 0, 1, 0, 2
    x = torch.tensor([[0, 1, 2, 3, 4]])
    multi = hashing({"num_bins": 3, "output_mode": "multi_hot"}, (5,))(x)
    assert multi.tolist() == [[1.0, 1.0, 1.0]]  # Keras' test: bins 0, 1, 2 all present
    count = hashing({"num_bins": 3, "output_mode": "count"}, (5,))(x)
    assert count.tolist() == [[2.0, 2.0, 1.0]]  # Keras' test: two 0s, two 1s, one 2
    spec = layer_registry.validate_spec(
        {"type": "Hashing", "num_bins": 3, "output_mode": "one_hot"}
    )
    assert spec.output_shape([(1,)]) == (3,) and spec.output_shape([(5,)]) == (5, 3)
    one_hot = spec.build([(1,)])(torch.tensor([[0], [4]]))
    assert one_hot.tolist() == [[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]


def test_hashing_arguments():
    from pydantic import ValidationError

    spec = layer_registry.validate_spec({"type": "Hashing", "num_bins": 8, "salt": 5})
    assert spec.salt_key() == (5, 5) and spec.output_shape([(3, 2)]) == (3, 2)
    for bad in ({"num_bins": 0}, {"num_bins": 3, "sparse": True}, {"num_bins": 3, "salt": -1}):
        with pytest.raises(ValidationError):
            layer_registry.validate_spec({"type": "Hashing", **bad})


@pytest.mark.filterwarnings("ignore:`torch.jit.trace:FutureWarning")
def test_hashing_runs_on_any_batch_shape_and_exports():
    module = hashing({"num_bins": 5}, (2, 3)).eval()
    x = torch.randint(-1000, 1000, (4, 2, 3))
    out = module(x)
    assert out.shape == x.shape and int(out.min()) >= 0 and int(out.max()) < 5
    traced = torch.jit.trace(module, (x,))
    assert torch.equal(traced(x), out)
    exported = torch.export.export(module, (x,))
    assert torch.equal(exported.module()(x), out)

"""The string hashes behind Keras' Hashing layer, batched in torch's int64 arithmetic.

Keras' Hashing turns every value into its decimal string (TensorFlow's `as_string`; floats are
first truncated to int64) and hashes the bytes: FarmHash64 (TensorFlow's `Fingerprint64`,
farmhash's `farmhashna::Hash64`) without a salt, SipHash-2-4 keyed by the salt with one. A bin
is the hash, read as an unsigned 64-bit number, modulo the number of bins.

The int64 tensors here hold uint64 bit patterns: addition, multiplication, xor and left shifts
wrap modulo 2**64 just as C's unsigned arithmetic does; only the right shift needs care (torch's
`>>` is arithmetic on int64, so `_shr` masks the copied sign bits away). Strings are rows of a
byte matrix, zero-padded, with their lengths; FarmHash is written for lengths up to 32, which
covers every int64 in decimal (at most 20 bytes).
"""

from __future__ import annotations

import torch

_MASK64 = (1 << 64) - 1


def _signed(value: int) -> int:
    """A uint64 constant as the int64 with the same bits (torch's scalars must fit int64)."""
    value &= _MASK64
    return value - (1 << 64) if value >= 1 << 63 else value


K0 = _signed(0xC3A5C85C97CB3127)
K1 = _signed(0xB492B66FBE98F273)
K2 = _signed(0x9AE16A3B2F90404F)
LOW32 = (1 << 32) - 1
DECIMAL_WIDTH = 24  # bytes per row: 20 for "-9223372036854775808", padded past SipHash's tail
_SIP_INIT = tuple(
    _signed(c) for c in (0x736F6D6570736575, 0x646F72616E646F6D, 0x6C7967656E657261)
) + (_signed(0x7465646279746573),)


def _shr(x: torch.Tensor, shift: int) -> torch.Tensor:
    """Logical right shift of uint64 bits held in int64."""
    return (x >> shift) & ((1 << (64 - shift)) - 1)


def _rotr(x: torch.Tensor, shift: int) -> torch.Tensor:
    return _shr(x, shift) | (x << (64 - shift))


def _rotl(x: torch.Tensor, shift: int) -> torch.Tensor:
    return (x << shift) | _shr(x, 64 - shift)


def _words(data: torch.Tensor, width: int) -> torch.Tensor:
    """(N, P - width + 1): the little-endian `width`-byte word at every offset of each row."""
    count = data.shape[1] - width + 1
    word = data[:, :count]
    for i in range(1, width):
        word = word | (data[:, i : i + count] << (8 * i))
    return word


def _at(words: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """Each row's word at its own offset (clamped into the row: a branch that reads outside a
    short string is discarded by its caller)."""
    index = offset.clamp(0, words.shape[1] - 1).unsqueeze(1)
    return words.gather(1, index).squeeze(1)


def _hash_len16(u: torch.Tensor, v: torch.Tensor, mul: torch.Tensor) -> torch.Tensor:
    a = (u ^ v) * mul
    a = a ^ _shr(a, 47)
    b = (v ^ a) * mul
    b = b ^ _shr(b, 47)
    return b * mul


def farmhash64(data: torch.Tensor, length: torch.Tensor) -> torch.Tensor:
    """FarmHash64 (TensorFlow's Fingerprint64) of each row's first `length` bytes, 1..32."""
    words, words32 = _words(data, 8), _words(data, 4)
    first, second = words[:, 0], words[:, 8]
    mul = K2 + length * 2
    # 8..16 bytes
    a = first + K2
    b = _at(words, length - 8)
    c = _rotr(b, 37) * mul + a
    d = (_rotr(a, 25) + b) * mul
    long8 = _hash_len16(c, d, mul)
    # 4..7 bytes
    long4 = _hash_len16(length + (words32[:, 0] << 3), _at(words32, length - 4), mul)
    # 1..3 bytes
    y = data[:, 0] + (data.gather(1, (length >> 1).unsqueeze(1)).squeeze(1) << 8)
    z = length + (data.gather(1, (length - 1).clamp(min=0).unsqueeze(1)).squeeze(1) << 2)
    mixed = (y * K2) ^ (z * K0)
    short = (mixed ^ _shr(mixed, 47)) * K2
    upto16 = torch.where(length >= 8, long8, torch.where(length >= 4, long4, short))
    # 17..32 bytes
    a = first * K1
    c = _at(words, length - 8) * mul
    d = _at(words, length - 16) * K2
    upto32 = _hash_len16(
        _rotr(a + second, 43) + _rotr(c, 30) + d, a + _rotr(second + K2, 18) + c, mul
    )
    return torch.where(length > 16, upto32, upto16)


def _sip_rounds(v: list[torch.Tensor], n: int) -> list[torch.Tensor]:
    v0, v1, v2, v3 = v
    for _ in range(n):
        v0 = v0 + v1
        v1 = _rotl(v1, 13) ^ v0
        v0 = _rotl(v0, 32)
        v2 = v2 + v3
        v3 = _rotl(v3, 16) ^ v2
        v0 = v0 + v3
        v3 = _rotl(v3, 21) ^ v0
        v2 = v2 + v1
        v1 = _rotl(v1, 17) ^ v2
        v2 = _rotl(v2, 32)
    return [v0, v1, v2, v3]


def siphash24(data: torch.Tensor, length: torch.Tensor, key: tuple[int, int]) -> torch.Tensor:
    """SipHash-2-4 (TensorFlow's StrongKeyedHash) of each row's first `length` bytes.

    The rows must be zero-padded to a multiple of 8 bytes past their longest string, so the
    word after a row's last full block is its tail, as SipHash pads it.
    """
    k0, k1 = _signed(key[0]), _signed(key[1])
    base = torch.zeros_like(length)
    v = [base + (_SIP_INIT[0] ^ k0), base + (_SIP_INIT[1] ^ k1)]
    v += [base + (_SIP_INIT[2] ^ k0), base + (_SIP_INIT[3] ^ k1)]
    words = _words(data, 8)
    blocks = length >> 3
    for j in range(data.shape[1] // 8 - 1):
        word = words[:, 8 * j]
        mixed = _sip_rounds([v[0], v[1], v[2], v[3] ^ word], 2)
        mixed[0] = mixed[0] ^ word
        live = blocks > j  # rows with fewer blocks keep their state
        v = [torch.where(live, m, old) for m, old in zip(mixed, v, strict=True)]
    tail = _at(words, blocks * 8) | ((length & 0xFF) << 56)
    v = _sip_rounds([v[0], v[1], v[2], v[3] ^ tail], 2)
    v[0] = v[0] ^ tail
    v[2] = v[2] ^ 0xFF
    v = _sip_rounds(v, 4)
    return v[0] ^ v[1] ^ v[2] ^ v[3]


def decimal_strings(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each int64 of a 1-D tensor as its decimal string: (bytes (N, DECIMAL_WIDTH), lengths).

    Digits come from truncating division by powers of ten, so the most negative int64 needs no
    absolute value (which would overflow).
    """
    negative = values < 0
    powers = torch.pow(10, torch.arange(19, device=values.device))  # an int64 has 19 digits
    quotients = torch.div(values.unsqueeze(1), powers, rounding_mode="trunc")
    by_place = torch.fmod(quotients, 10).abs()  # digit k (least significant first)
    n_digits = 1 + (quotients[:, 1:] != 0).sum(dim=1)
    sign = negative.long()
    position = torch.arange(DECIMAL_WIDTH, device=values.device).unsqueeze(0)
    from_left = position - sign.unsqueeze(1)  # index among the digits, most significant first
    place = (n_digits.unsqueeze(1) - 1 - from_left).clamp(0, 18)
    digit_bytes = by_place.gather(1, place) + ord("0")
    is_digit = (from_left >= 0) & (from_left < n_digits.unsqueeze(1))
    data = torch.where(is_digit, digit_bytes, torch.zeros_like(digit_bytes))
    data = torch.where((position == 0) & negative.unsqueeze(1), ord("-"), data)
    return data, n_digits + sign


def unsigned_mod(hashes: torch.Tensor, n: int) -> torch.Tensor:
    """uint64 bits held in int64, modulo n (n < 2**31): by 32-bit halves, so nothing overflows."""
    high, low = _shr(hashes, 32), hashes & LOW32
    return ((high % n) * ((1 << 32) % n) + low % n) % n

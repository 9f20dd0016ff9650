"""The cochlea model that made SHD and SSC (Cramer et al. 2020), from its equations, vectorised over channels.

Cramer, Stradmann, Schemmel, Zenke, "The Heidelberg spiking data sets for the systematic evaluation of spiking
neural networks", IEEE TNNLS 2020 (arXiv:1910.07407), the cochlea model of its methods: audio, normalised to an
RMS of 0.3 and faded in and out by a Hann window, drives

1. a hydrodynamic (shallow-water) basilar membrane, Sieroka, Dosch & Rupp, JASA 120(1):297, 2006: at place x
   (0 … 3.5 cm, one channel each) the membrane velocity is the audio spectrum times
   v(w, x) = 2w / xi(w, x) * p(w, x) / p(w, 0) * Z(w), with stiffness s(x) = C0 exp(-alpha x) - A, damping
   r(x) = R exp(-alpha x / 2), R = delta sqrt(C0 m), impedance xi = s - m w^2 - i w r, wave number
   g = w sqrt(rho / (h xi)), pressure p = sqrt(G / g) H0^(1)(G) with G the closed-form integral of g over x,
   and Z(w) the input impedance of the oval window (Bessel functions J0, Y0, J1, Y1);
2. an inner hair cell per channel, Meddis, JASA 79(3):702, 1986 and 83(3):1056, 1988: free transmitter q,
   cleft c and reprocessing store w, permeability k(s) = g (s + A) / (s + A + B), firing probability h c dt;
3. bushy cells, one per channel, leaky integrate-and-fire (tau_mem 1 ms, tau_syn 0.5 ms, 1 ms refractory) fed by
   40 auditory-nerve fibres that each fire when a uniform draw falls below the hair cell's probability.

Defaults are those of lauscher 1.0.1 (the reference implementation, LGPL; nothing of it is copied here). To give
the same spikes for the same audio and seed, this code follows lauscher's conventions where the paper is silent:
- the membrane's output has len(audio) // 2 + 1 samples (the one-sided spectrum, inverse-transformed as it is)
  and is treated as sampled at rate // 2: hair cells, fibres and bushy cells run at 8 kHz for 16 kHz audio;
- the spectrum's frequency axis is 2 pi * linspace(1 Hz, rate // 2, n) (it starts at 1 Hz, not 0);
- random numbers come from numpy's legacy MT19937 stream (`np.random.seed` = `RandomState`), drawn channel by
  channel, each an (n_samples, 40) block in C order (time-major, fibre-minor), compared with `u < p`;
- fibre refractoriness: a fibre's hit at sample j is dropped when j - (its last kept spike) < tau_refrac * rate;
- bushy-cell refractoriness: a cell whose potential reached 1 (clipped there) spikes at that sample, detected at
  the next one, where its potential is reset to 0 and it ignores input for tau_refrac * rate samples (synaptic
  currents keep integrating); a threshold crossing at the last sample is never reported;
- every floating-point expression is evaluated in the same order of operations (same roundings), and the sum
  over a cell's 40 synaptic currents is numpy's (pairwise) sum, so that rounding cannot move a spike.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numba
import numpy as np
from scipy import signal, special


@dataclass(frozen=True)
class CochleaParams:
    """The model's constants; defaults are lauscher 1.0.1's, the values behind SHD (Cramer et al. 2020)."""

    sample_rate: int = 16000  # audio is resampled (polyphase) to this rate first
    rms: float = 0.3  # RMS level the audio is normalised to
    channels: int = 700  # places along the basilar membrane
    # basilar membrane (Sieroka et al. 2006); cgs units, place in cm
    length: float = 3.5
    bm_a: float = 3500.0  # A: stiffness offset
    alpha: float = 3.0  # stiffness decay along the membrane, 1/cm
    rho: float = 1.0  # fluid density
    c0: float = 10e8  # C0: stiffness at the base
    delta: float = 0.15  # damping ratio
    height: float = 0.1  # h: height of the fluid channel
    mass: float = 0.05  # m: membrane mass per area
    # inner hair cell (Meddis 1986, 1988), rates in 1/s
    ihc_y: float = 5.05  # replenishment
    ihc_g: float = 2000.0  # permeability scale
    ihc_l: float = 2500.0  # loss from the cleft
    ihc_r: float = 6580.0  # reuptake into the cell
    ihc_x: float = 66.3  # reprocessing
    ihc_a: float = 5.0  # permeability offset
    ihc_b: float = 300.0  # permeability saturation
    ihc_h: float = 50000.0  # firing rate per cleft transmitter
    ihc_m: float = 1.0  # maximum free transmitter
    # bushy cells
    fibres: int = 40  # auditory-nerve fibres converging on each bushy cell
    tau_mem: float = 1e-3
    tau_syn: float = 5e-4
    tau_refrac: float = 1e-3  # of the fibres and of the bushy cells
    weight: float = 13e3  # total synaptic weight, shared by the fibres


DEFAULT = CochleaParams()


def prepare_audio(samples, sample_rate: int, params: CochleaParams = DEFAULT) -> np.ndarray:
    """Mono audio → the membrane's input: resampled to params.sample_rate (polyphase, scipy's resample_poly),
    normalised to RMS params.rms, the first half faded in and the second half out by a Hann window."""
    x = np.asarray(samples, dtype=np.float64)
    if sample_rate != params.sample_rate:
        ratio = Fraction(params.sample_rate, sample_rate)
        x = signal.resample_poly(x, ratio.numerator, ratio.denominator)
    x = np.array(x, dtype=np.float64)  # own copy, scaled in place below
    x *= params.rms / np.sqrt(np.mean(x**2))
    half = len(x) // 2
    ramp = np.hanning(2 * half)[:half]
    x[:half] = ramp * x[:half]
    x[len(x) - half:] = ramp[::-1] * x[len(x) - half:]
    return x


def _pressure_terms(p: CochleaParams, w: np.ndarray, w2: np.ndarray):
    """The place-independent parts of the membrane's pressure p(w, x)."""
    damping = p.delta * np.sqrt(p.c0 * p.mass)
    sq = np.sqrt(p.bm_a + p.mass * w2)
    # the integral G = ∫ g dx in closed form: its logarithm's numerator (the base, x = 0) ...
    base = -p.alpha * np.sqrt(-p.bm_a + p.c0 - w * (p.mass * w + 1j * damping)) \
        + 1j * p.alpha * (2.0 * p.bm_a + w * (2.0 * p.mass * w + 1j * damping)) / (2.0 * sq)
    # ... and the factor in front of the logarithm
    front = 1 / (p.alpha * np.sqrt(p.height * 2.0 * (p.mass * w2 + p.bm_a)))
    return damping, sq, base, front


def _impedance(p: CochleaParams, x, w: np.ndarray, w2: np.ndarray, damping: float) -> np.ndarray:
    """xi(w, x) = s(x) - m w^2 - i w r(x)."""
    stiffness = p.c0 * np.exp(-p.alpha * x) - p.bm_a
    return stiffness - p.mass * w2 - 1j * w * (damping * np.exp(-p.alpha * x / 2.0))


def _pressure(p: CochleaParams, x, w, w2, terms, g0) -> tuple[np.ndarray, np.ndarray]:
    """(p(w, x), xi(w, x)) at places x (a column, or the float 0.0), frequencies w along the last axis."""
    damping, sq, base, front = terms
    xi = _impedance(p, x, w, w2, damping)
    g = w * np.sqrt(p.rho / (p.height * xi))
    up = np.exp(p.alpha * x / 2.0)
    down = np.exp(-p.alpha * x)
    half_down = 1j * np.exp(-p.alpha * x / 2.0)
    place = 0.5 * p.alpha * up * (
        -2.0 * np.sqrt(-p.bm_a + p.c0 * down - p.mass * w2 - half_down * w * damping)
        + 1j * (2.0 * p.bm_a + w * (2.0 * p.mass * w + half_down * damping)) / sq)
    big_g = 2.0 * g0 / p.alpha - front * (2.0 * 1j * np.sqrt(2.0) * w * np.log(base / place))
    return np.sqrt(big_g / g) * special.hankel1(0, big_g), xi


def _window_impedance(p: CochleaParams, w: np.ndarray) -> np.ndarray:
    """Z(w), the oval window's input impedance."""
    f = w / (2.0 * np.pi)
    arg = 4.0 * np.pi * f / p.alpha * np.sqrt(2.0 / (p.height * p.c0))
    return np.sqrt(2.0 * p.c0 / p.height) * (1j * special.j0(arg) + special.y0(arg)) \
        / (special.j1(arg) - 1j * special.y1(arg))


def basilar_membrane(audio: np.ndarray, sample_rate: int, params: CochleaParams = DEFAULT) -> tuple[np.ndarray, int]:
    """Membrane velocity (channels, len(audio) // 2 + 1) and its sample rate (sample_rate // 2): the one-sided
    spectrum times v(w, x) per place, transformed back."""
    p = params
    n = len(audio) // 2 + 1
    rate = sample_rate // 2
    w = 2 * np.pi * np.linspace(1, rate, n)
    w2 = w**2
    spectrum = np.fft.fft(audio)[:n]
    terms = _pressure_terms(p, w, w2)
    g0 = w * np.sqrt(p.rho / (p.height * _impedance(p, 0.0, w, w2, terms[0])))
    p0, _ = _pressure(p, 0.0, w, w2, terms, g0)
    z = _window_impedance(p, w)
    places = np.linspace(0, p.length, p.channels)
    out = np.empty((p.channels, n))
    block = max(1, (1 << 15) // n)  # channels at a time: temporaries that stay in cache
    for lo in range(0, p.channels, block):
        x = places[lo:lo + block, None]
        pressure, xi = _pressure(p, x, w, w2, terms, g0)
        v = 2.0 * w / xi * pressure * z / p0
        out[lo:lo + block] = np.fft.ifft(v * spectrum, axis=-1).real
    return out, rate


def hair_cells(velocity: np.ndarray, sample_rate: int, params: CochleaParams = DEFAULT) -> np.ndarray:
    """Meddis inner hair cells: firing probability per sample (channels, samples), all channels at once."""
    p = params
    fs = float(sample_rate)
    ymdt, xdt, ydt = p.ihc_y * p.ihc_m / fs, p.ihc_x / fs, p.ihc_y / fs
    rdt, gdt, hdt, lrdt = p.ihc_r / fs, p.ihc_g / fs, p.ihc_h / fs, (p.ihc_l + p.ihc_r) / fs
    k0 = p.ihc_g * p.ihc_a / (p.ihc_a + p.ihc_b)  # resting state: the steady state at zero input
    c0 = p.ihc_m * p.ihc_y * k0 / (p.ihc_l * k0 + p.ihc_y * (p.ihc_l + p.ihc_r))
    n_ch = velocity.shape[0]
    q = np.full(n_ch, c0 * (p.ihc_l + p.ihc_r) / k0)  # free transmitter
    c = np.full(n_ch, c0)  # cleft
    w = np.full(n_ch, c0 * p.ihc_r / p.ihc_x)  # reprocessing store
    drive = np.ascontiguousarray(velocity.T) + p.ihc_a  # (samples, channels), a row per time step
    out = np.empty(drive.shape)
    zero = np.zeros(n_ch)
    for j, s in enumerate(drive):
        k = np.where(s > 0, gdt * s / (s + p.ihc_b), 0.0)
        refill = np.where(q < p.ihc_m, ymdt - ydt * q, 0.0)
        eject, reprocess = k * q, xdt * w
        q, c, w = (np.maximum(q + refill - eject + reprocess, zero), np.maximum(c + eject - lrdt * c, zero),
                   np.maximum(w + rdt * c - reprocess, zero))
        out[j] = c * hdt
    return out.T


MT_N, MT_M = 624, 397  # Mersenne Twister MT19937 (Matsumoto & Nishimura 1998): state words, shift


@numba.njit(cache=True)
def _mt_temper(key, words):
    """The outputs of state words `key` (MT19937's tempering), into `words`."""
    for i in range(MT_N):
        y = key[i]
        y ^= y >> 11
        y ^= (y << 7) & 0x9D2C5680
        y ^= (y << 15) & 0xEFC60000
        words[i] = y ^ (y >> 18)


@numba.njit(cache=True)
def _mt_refill(key, words):
    """The next 624 state words (the MT19937 recurrence, in place) and their outputs."""
    for i in range(MT_N - MT_M):
        y = (key[i] & 0x80000000) | (key[i + 1] & 0x7FFFFFFF)
        key[i] = key[i + MT_M] ^ (y >> 1) ^ ((y & 1) * 0x9908B0DF)
    for i in range(MT_N - MT_M, MT_N - 1):
        y = (key[i] & 0x80000000) | (key[i + 1] & 0x7FFFFFFF)
        key[i] = key[i + MT_M - MT_N] ^ (y >> 1) ^ ((y & 1) * 0x9908B0DF)
    y = (key[MT_N - 1] & 0x80000000) | (key[0] & 0x7FFFFFFF)
    key[MT_N - 1] = key[MT_M - 1] ^ (y >> 1) ^ ((y & 1) * 0x9908B0DF)
    _mt_temper(key, words)


@numba.njit(cache=True)
def _mt_uniforms(key, words, pos, out):
    """Fill `out` with numpy's doubles (two words each: (a >> 5) * 2^26 + (b >> 6), times 2^-53); new pos."""
    k, n = 0, len(out)
    while k < n:
        if pos == MT_N:
            _mt_refill(key, words)
            pos = 0
        if pos == MT_N - 1:  # a double across two refills (after an odd number of words drawn)
            a = words[pos]
            _mt_refill(key, words)
            out[k] = ((a >> 5) * 67108864.0 + (words[0] >> 6)) * (1.0 / 9007199254740992.0)
            k, pos = k + 1, 1
            continue
        m = min((MT_N - pos) // 2, n - k)
        for j in range(m):
            out[k + j] = ((words[pos + 2 * j] >> 5) * 67108864.0 + (words[pos + 2 * j + 1] >> 6)) \
                * (1.0 / 9007199254740992.0)
        k, pos = k + m, pos + 2 * m
    return pos


@numba.njit(cache=True)
def pairwise_sum(a, acc):
    """numpy's sum of a 1-d float64 array (pairwise: eight running sums, then a tree), for len(a) <= 128."""
    n = len(a)
    if n < 8:
        res = 0.0
        for i in range(n):
            res += a[i]
        return res
    for j in range(8):
        acc[j] = a[j]
    i = 8
    while i < n - n % 8:
        for j in range(8):
            acc[j] += a[i + j]
        i += 8
    res = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))
    while i < n:
        res += a[i]
        i += 1
    return res


@numba.njit(cache=True)
def _bushy_kernel(prob, key, pos, fibres, refrac, mem_decay, syn_decay, weight, dt):
    """Fibres and bushy cells, channel by channel, drawing from the MT19937 state (key, pos) as it goes:
    (sample index, channel) of every spike in channel order, and the new position."""
    n_ch, n = prob.shape
    last = np.empty(fibres)  # each fibre's last kept spike
    current = np.empty(fibres)  # synaptic currents
    acc = np.empty(8)
    words = np.empty(MT_N, np.int64)
    _mt_temper(key, words)
    uniform = np.empty(n * fibres)
    steps = np.empty(1024, np.int64)
    cells = np.empty(1024, np.int64)
    count = 0
    for c in range(n_ch):
        pos = _mt_uniforms(key, words, pos, uniform)  # this channel's (samples, fibres) draws, in C order
        last[:] = -refrac
        current[:] = 0.0
        vm = 0.0
        countdown = 0.0
        for t in range(n):
            new = 0.0
            if t > 0 and countdown <= 0:
                if vm < 1.0:
                    new = vm * mem_decay
                else:  # reached threshold at t - 1: spike, reset, refractory
                    countdown = refrac
                    if count == len(steps):
                        steps = np.concatenate((steps, np.empty_like(steps)))
                        cells = np.concatenate((cells, np.empty_like(cells)))
                    steps[count] = t - 1
                    cells[count] = c
                    count += 1
            if t > 0:
                for f in range(fibres):
                    current[f] = current[f] * syn_decay
            p = prob[c, t]
            for f in range(fibres):
                if uniform[t * fibres + f] < p and not (t - last[f] < refrac):
                    last[f] = t
                    current[f] += 1.0
            if countdown <= 0:
                new = new + pairwise_sum(current, acc) * weight * dt
            if new > 1.0:
                new = 1.0
            countdown -= 1
            vm = new
    return steps[:count], cells[:count], pos


def bushy_cells(prob: np.ndarray, sample_rate: int, rng: np.random.RandomState,
                params: CochleaParams = DEFAULT) -> tuple[np.ndarray, np.ndarray]:
    """Fibres (uniform draw below the probability, refractory) → bushy cells (LIF): (sample index, channel) of
    every bushy-cell spike, by time then channel. Draws from `rng`'s MT19937 stream as numpy's
    rng.random_sample((samples, fibres)) per channel would, and leaves `rng` where those draws would."""
    p = params
    if not 1 <= p.fibres <= 128:
        raise ValueError(f"fibres must be 1 ... 128, not {p.fibres}")
    name, key, pos, has_gauss, gauss = rng.get_state()
    key = np.array(key, dtype=np.int64)
    dt = 1 / float(sample_rate)
    steps, cells, pos = _bushy_kernel(
        np.ascontiguousarray(prob, dtype=np.float64), key, int(pos), p.fibres, p.tau_refrac * sample_rate,
        np.exp(-dt / p.tau_mem), np.exp(-dt / p.tau_syn), p.weight / float(p.fibres), dt)
    rng.set_state((name, key.astype(np.uint32), pos, has_gauss, gauss))
    order = np.lexsort((cells, steps))
    return steps[order], cells[order]


def wav_to_spikes(samples, sample_rate: int, seed, params: CochleaParams = DEFAULT) -> tuple[np.ndarray, np.ndarray]:
    """Mono audio → SHD spikes: (times in seconds, float64; channels, int64), ordered by time then channel.
    `seed`: an int (numpy's legacy seeding, as np.random.seed) or a np.random.RandomState to draw from."""
    rng = seed if isinstance(seed, np.random.RandomState) else np.random.RandomState(seed)
    audio = prepare_audio(samples, sample_rate, params)
    velocity, rate = basilar_membrane(audio, params.sample_rate, params)
    prob = hair_cells(velocity, rate, params)
    steps, cells = bushy_cells(prob, rate, rng, params)
    return steps.astype(np.float64) / rate, cells

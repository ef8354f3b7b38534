import Foundation

/// A counter-based random stream (Philox4x32-10, Salmon et al., SC'11).
///
/// A stream is named by a seed and a stream id; its n-th 128-bit block is a pure function of
/// (seed, stream, n). So a rank, a layer or a data shard can draw its own stream reproducibly whatever
/// the world size: derive it with `split(_:)` from a parent, or jump with `seek(toBlock:)`.
public struct RandomStream: RandomNumberGenerator, Sendable {
    public let seed: UInt64
    public let stream: UInt64
    /// Index of the next 128-bit block to generate.
    public private(set) var block: UInt64 = 0
    private var buffer: (UInt32, UInt32, UInt32, UInt32) = (0, 0, 0, 0)
    private var buffered = 0  // words of `buffer` not yet used, taken from the front
    private var spareNormal: Float? = nil

    public init(seed: UInt64, stream: UInt64 = 0) {
        self.seed = seed
        self.stream = stream
    }

    /// An independent child stream, the same for the same (parent, id) on every rank and run.
    public func split(_ id: UInt64) -> RandomStream {
        RandomStream(seed: seed, stream: RandomStream.mix(stream &+ 0x9E37_79B9_7F4A_7C15 &* (id &+ 1)))
    }

    /// Moves to block `n` (4 words each), discarding buffered words.
    public mutating func seek(toBlock n: UInt64) {
        block = n
        buffered = 0
        spareNormal = nil
    }

    /// The Philox4x32-10 bijection: counter (4 words) under key (2 words).
    public static func philox(counter: (UInt32, UInt32, UInt32, UInt32), key: (UInt32, UInt32))
        -> (UInt32, UInt32, UInt32, UInt32)
    {
        var (c0, c1, c2, c3) = counter
        var (k0, k1) = key
        for round in 0..<10 {
            if round > 0 {
                k0 &+= 0x9E37_79B9
                k1 &+= 0xBB67_AE85
            }
            let p0 = UInt64(0xD251_1F53) &* UInt64(c0)
            let p1 = UInt64(0xCD9E_8D57) &* UInt64(c2)
            (c0, c1, c2, c3) = (
                UInt32(truncatingIfNeeded: p1 >> 32) ^ c1 ^ k0, UInt32(truncatingIfNeeded: p1),
                UInt32(truncatingIfNeeded: p0 >> 32) ^ c3 ^ k1, UInt32(truncatingIfNeeded: p0)
            )
        }
        return (c0, c1, c2, c3)
    }

    /// SplitMix64's finaliser: a bijective mix used to derive child stream ids.
    static func mix(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// The next 32 random bits.
    public mutating func nextWord() -> UInt32 {
        if buffered == 0 {
            buffer = RandomStream.philox(
                counter: (UInt32(truncatingIfNeeded: block), UInt32(truncatingIfNeeded: block >> 32),
                          UInt32(truncatingIfNeeded: stream), UInt32(truncatingIfNeeded: stream >> 32)),
                key: (UInt32(truncatingIfNeeded: seed), UInt32(truncatingIfNeeded: seed >> 32)))
            block &+= 1
            buffered = 4
        }
        defer { buffered -= 1 }
        switch buffered {
        case 4: return buffer.0
        case 3: return buffer.1
        case 2: return buffer.2
        default: return buffer.3
        }
    }

    public mutating func next() -> UInt64 {
        UInt64(nextWord()) | (UInt64(nextWord()) << 32)
    }

    /// Uniform in [0, 1), 24 random bits.
    public mutating func nextUniform() -> Float {
        Float(nextWord() >> 8) * 0x1p-24
    }

    /// Standard normal (Box–Muller; values come in pairs, the second is kept for the next call).
    public mutating func nextNormal() -> Float {
        if let spare = spareNormal {
            spareNormal = nil
            return spare
        }
        let u1 = Float((nextWord() >> 8) + 1) * 0x1p-24  // (0, 1]: log is finite
        let u2 = Float(nextWord() >> 8) * 0x1p-24
        let radius = (-2 * logf(u1)).squareRoot()
        let angle = 2 * Float.pi * u2
        spareNormal = radius * sinf(angle)
        return radius * cosf(angle)
    }

    /// A uniformly random integer in 0..<bound, unbiased (Lemire's multiply-and-reject).
    public mutating func nextInt(below bound: Int) -> Int {
        precondition(bound > 0, "nextInt(below: \(bound))")
        let b = UInt64(bound)
        var m = next().multipliedFullWidth(by: b)
        if m.low < b {
            let threshold = (0 &- b) % b
            while m.low < threshold { m = next().multipliedFullWidth(by: b) }
        }
        return Int(m.high)
    }

    /// Fills with values uniform in [low, high).
    public mutating func fillUniform(_ buffer: UnsafeMutableBufferPointer<Float>, low: Float = 0, high: Float = 1) {
        for i in buffer.indices { buffer[i] = low + (high - low) * nextUniform() }
    }

    /// Skips the first `count` values `nextNormal` would return from a fresh stream (block 0, nothing
    /// drawn), in O(1): two normals take two words, so value k comes from block k/4. A shard can then draw
    /// exactly the values a whole-tensor `fillNormal` would have put at its offsets.
    public mutating func skipNormals(_ count: Int) {
        precondition(block == 0 && buffered == 0 && spareNormal == nil, "skipNormals needs a fresh stream")
        let pairs = count / 2
        seek(toBlock: UInt64(pairs / 2))
        if pairs % 2 == 1 { _ = nextWord(); _ = nextWord() }
        if count % 2 == 1 { _ = nextNormal() }
    }

    /// Fills with normal values of the given mean and standard deviation.
    public mutating func fillNormal(_ buffer: UnsafeMutableBufferPointer<Float>, mean: Float = 0, std: Float = 1) {
        for i in buffer.indices { buffer[i] = mean + std * nextNormal() }
    }

    /// A uniformly random permutation of 0..<n (Fisher–Yates).
    public mutating func permutation(_ n: Int) -> [Int] {
        var p = Array(0..<n)
        if n > 1 {
            for i in stride(from: n - 1, to: 0, by: -1) { p.swapAt(i, nextInt(below: i + 1)) }
        }
        return p
    }
}

extension Tensor {
    /// A tensor of normal draws.
    public static func normal(_ shape: [Int], mean: Float = 0, std: Float = 1, using rng: inout RandomStream) -> Tensor {
        Tensor(shape: shape) { rng.fillNormal($0, mean: mean, std: std) }
    }

    /// A tensor of uniform draws in [low, high).
    public static func uniform(_ shape: [Int], low: Float = 0, high: Float = 1, using rng: inout RandomStream) -> Tensor {
        Tensor(shape: shape) { rng.fillUniform($0, low: low, high: high) }
    }
}

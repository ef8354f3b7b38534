import Foundation
import Testing
import SubspaceCore
@testable import SubspaceModel

/// The tiled attention against the reference kernel that keeps [B, H, T, T] probabilities: outputs,
/// every input gradient and the head-gate gradients to float noise, for tiles that do and do not divide
/// T, a sequence shorter than one tile, grouped-query heads and gates (one of them 0).
@Suite struct AttentionTests {
    struct Case: CustomTestStringConvertible, Sendable {
        let B: Int, T: Int, H: Int, G: Int, D: Int, queryTile: Int, keyTile: Int, gated: Bool, workers: Int
        var testDescription: String { "B\(B) T\(T) H\(H) G\(G) D\(D) tiles \(queryTile)×\(keyTile)\(gated ? " gated" : "") workers \(workers)" }
    }

    static let cases: [Case] = [
        // T not divisible by either tile; key tiles narrower than query tiles (rows with nothing visible in a tile).
        Case(B: 2, T: 13, H: 4, G: 4, D: 8, queryTile: 4, keyTile: 3, gated: false, workers: 1),
        // Grouped-query (two query heads per key/value head), wide key tiles, gates, three workers.
        Case(B: 2, T: 37, H: 6, G: 3, D: 16, queryTile: 8, keyTile: 16, gated: true, workers: 3),
        // One key/value head for all; T shorter than one tile (the default tiles).
        Case(B: 3, T: 5, H: 4, G: 1, D: 8, queryTile: 64, keyTile: 256, gated: true, workers: 2),
        // The default tiles across a block boundary (several key blocks: the online rescaling).
        Case(B: 1, T: 70, H: 2, G: 1, D: 24, queryTile: 64, keyTile: 32, gated: false, workers: 1),
        Case(B: 1, T: 300, H: 2, G: 2, D: 16, queryTile: 64, keyTile: 256, gated: true, workers: 2),
    ]

    /// Relative Frobenius distance, with the worst element for the failure message.
    static func distance(_ a: [Float], _ b: [Float]) -> (relative: Double, worst: String) {
        var num = 0.0, den = 0.0, worst = (0, 0.0)
        for i in a.indices {
            let d = Double(a[i]) - Double(b[i])
            num += d * d
            den += Double(b[i]) * Double(b[i])
            if abs(d) > worst.1 { worst = (i, abs(d)) }
        }
        let text = a.isEmpty ? "empty" : "worst at \(worst.0): \(a[worst.0]) vs \(b[worst.0])"
        return ((num / max(den, 1e-30)).squareRoot(), text)
    }

    @Test(arguments: cases)
    func tiledMatchesReference(_ c: Case) {
        let saved = Parallel.workers
        Parallel.workers = c.workers
        defer { Parallel.workers = saved }
        var rng = RandomStream(seed: UInt64(c.T * 31 + c.H))
        let tiled = Attention(B: c.B, T: c.T, H: c.H, G: c.G, D: c.D, queryTile: c.queryTile, keyTile: c.keyTile)
        let reference = ReferenceAttention(B: c.B, T: c.T, H: c.H, G: c.G, D: c.D)
        let N = c.B * c.T
        let qkv = randomArray(N * tiled.S, &rng, std: 1.5), dout = randomArray(N * c.H * c.D, &rng)
        var gates: [Float]? = nil
        if c.gated {
            var g = (0..<c.H).map { _ in 1 + 0.5 * rng.nextNormal() }
            g[1] = 0
            gates = g
        }

        var out = [Float](repeating: .nan, count: N * c.H * c.D), lse = [Float](repeating: .nan, count: c.B * c.H * c.T)
        var scratch = [Float](repeating: .nan, count: tiled.scratchCount)
        var dqkv = [Float](repeating: 0, count: qkv.count), dgates = [Float](repeating: 0, count: c.B * c.H)
        var refOut = out, att = [Float](repeating: 0, count: c.B * c.H * c.T * c.T)
        var refScratch = [Float](repeating: 0, count: reference.scratchCount)
        var refDqkv = dqkv, refDgates = dgates
        func withGates(_ body: (UnsafePointer<Float>?) -> Void) {
            if let gates { gates.withUnsafeBufferPointer { body($0.baseAddress!) } } else { body(nil) }
        }
        withGates { g in
            tiled.forward(out: &out, lse: &lse, qkv: qkv, scratch: &scratch, gates: g)
            tiled.backward(dqkv: &dqkv, dout: dout, qkv: qkv, out: out, lse: lse, scratch: &scratch, gates: g,
                           dgates: &dgates, gateStride: c.H)
            reference.forward(out: &refOut, att: &att, qkv: qkv, gates: g)
            reference.backward(dqkv: &refDqkv, dout: dout, qkv: qkv, att: att, scratch: &refScratch, gates: g,
                               dgates: &refDgates, gateStride: c.H)
        }
        for (name, a, b) in [("out", out, refOut), ("dqkv", dqkv, refDqkv), ("dgates", dgates, refDgates)] {
            let d = Self.distance(a, b)
            #expect(d.relative < 1e-5, "\(c.testDescription) \(name): relative distance \(d.relative), \(d.worst)")
        }
        // The logsumexp rows, against a double-precision computation from the scores.
        let (S, group, scale) = (tiled.S, c.H / c.G, 1 / Double(c.D).squareRoot())
        var worst = 0.0
        for b in 0..<c.B {
            for h in 0..<c.H {
                let g = h / group
                for i in 0..<c.T {
                    let scores = (0...i).map { j in
                        (0..<c.D).reduce(0.0) { s, d in
                            s + Double(qkv[(b * c.T + i) * S + h * c.D + d]) * Double(qkv[(b * c.T + j) * S + (c.H + g) * c.D + d])
                        } * scale
                    }
                    let m = scores.max()!
                    let expected = m + log(scores.reduce(0) { $0 + exp($1 - m) })
                    worst = max(worst, abs(Double(lse[(b * c.H + h) * c.T + i]) - expected) / max(1, abs(expected)))
                }
            }
        }
        #expect(worst < 1e-5, "\(c.testDescription) lse: worst relative error \(worst)")
    }

    /// The cached entry (keys and values held apart, rows at a position offset) gives the rows the
    /// whole-sequence forward gives: a prompt split at `split`, then the rest in one call, small tiles.
    @Test(arguments: [(4, 2, 1), (6, 3, 3)])
    func cachedRowsMatchWholeSequence(H: Int, G: Int, workers: Int) {
        let saved = Parallel.workers
        Parallel.workers = workers
        defer { Parallel.workers = saved }
        var rng = RandomStream(seed: 21)
        let (T, D, split, capacity) = (19, 8, 7, 24)
        let whole = Attention(B: 1, T: T, H: H, G: G, D: D, queryTile: 4, keyTile: 5)
        let S = whole.S
        let qkv = randomArray(T * S, &rng)
        let gates = (0..<H).map { _ in 1 + 0.5 * rng.nextNormal() }
        var out = [Float](repeating: 0, count: T * H * D), lse = [Float](repeating: 0, count: H * T)
        var scratch = [Float](repeating: 0, count: whole.scratchCount)
        whole.forward(out: &out, lse: &lse, qkv: qkv, scratch: &scratch, gates: gates)
        // The cache: [G, capacity, D] keys and values.
        var keys = [Float](repeating: .nan, count: G * capacity * D), values = keys
        for t in 0..<T {
            for g in 0..<G {
                for d in 0..<D {
                    keys[(g * capacity + t) * D + d] = qkv[t * S + (H + g) * D + d]
                    values[(g * capacity + t) * D + d] = qkv[t * S + (H + G + g) * D + d]
                }
            }
        }
        var cached = [Float](repeating: 0, count: T * H * D)
        for (p0, rows) in [(0, split), (split, T - split)] {
            let attention = Attention(B: 1, T: rows, H: H, G: G, D: D, queryTile: 4, keyTile: 5, keyLength: capacity)
            var tiles = [Float](repeating: .nan, count: attention.scratchCount)
            let rowsOut = qkv.withUnsafeBufferPointer { q in
                var o = [Float](repeating: 0, count: rows * H * D)
                attention.forward(out: &o, qkv: q.baseAddress! + p0 * S, keys: keys, values: values, headStride: capacity * D,
                                  position: p0, scratch: &tiles, gates: gates)
                return o
            }
            cached.replaceSubrange((p0 * H * D)..<((p0 + rows) * H * D), with: rowsOut)
        }
        let d = Self.distance(cached, out)
        #expect(d.relative < 1e-5, "cached rows vs whole sequence: relative distance \(d.relative), \(d.worst)")
    }

    /// A scratch that grows with the worker count: a model made with one worker then run with more.
    @Test func scratchFollowsWorkers() {
        let saved = Parallel.workers
        defer { Parallel.workers = saved }
        Parallel.workers = 1
        let one = Attention(B: 1, T: 100, H: 2, G: 2, D: 8)
        Parallel.workers = 4
        let four = Attention(B: 1, T: 100, H: 2, G: 2, D: 8)
        #expect(four.scratchCount == 4 * one.scratchCount)
        // Per worker a fixed tile pair, whatever T: never T².
        #expect(Attention(B: 1, T: 4096, H: 12, G: 12, D: 64).scratchCount == 4 * (2 * 64 * 256 + 2 * 64))
    }
}

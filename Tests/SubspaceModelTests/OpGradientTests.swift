import Foundation
import Testing
import SubspaceCore
@testable import SubspaceModel

/// A finite-difference check for every op's backward: the loss is Σ out ⊙ R for a fixed random R, so
/// ∂L/∂out = R, and backward(R) must match central differences of the forward pass.
@Suite struct OpGradientTests {
    @Test func layerNorm() {
        var rng = RandomStream(seed: 1)
        let (N, C) = (5, 12)
        let x = randomArray(N * C, &rng), w = randomArray(C, &rng), b = randomArray(C, &rng), r = randomArray(N * C, &rng)
        func forward(_ x: [Float], _ w: [Float], _ b: [Float]) -> (out: [Float], mean: [Float], rstd: [Float]) {
            var out = [Float](repeating: 0, count: N * C), mean = [Float](repeating: 0, count: N), rstd = mean
            LayerNorm.forward(out: &out, mean: &mean, rstd: &rstd, inp: x, weight: w, bias: b, N: N, C: C, eps: 1e-5)
            return (out, mean, rstd)
        }
        let f = forward(x, w, b)
        var dx = [Float](repeating: 0, count: N * C), dw = [Float](repeating: 0, count: C), db = dw
        LayerNorm.backward(dinp: &dx, dweight: &dw, dbias: &db, dout: r, inp: x, weight: w, mean: f.mean, rstd: f.rstd, N: N, C: C)
        checkGradient("LayerNorm dx", at: x, analytic: dx) { weightedSum(forward($0, w, b).out, r) }
        checkGradient("LayerNorm dw", at: w, analytic: dw) { weightedSum(forward(x, $0, b).out, r) }
        checkGradient("LayerNorm db", at: b, analytic: db) { weightedSum(forward(x, w, $0).out, r) }
    }

    @Test func rmsNorm() {
        var rng = RandomStream(seed: 2)
        let (N, C) = (4, 10)
        let x = randomArray(N * C, &rng), w = randomArray(C, &rng), r = randomArray(N * C, &rng)
        func forward(_ x: [Float], _ w: [Float]) -> (out: [Float], rstd: [Float]) {
            var out = [Float](repeating: 0, count: N * C), rstd = [Float](repeating: 0, count: N)
            RMSNorm.forward(out: &out, rstd: &rstd, inp: x, weight: w, N: N, C: C, eps: 1e-6)
            return (out, rstd)
        }
        let f = forward(x, w)
        var dx = [Float](repeating: 0, count: N * C), dw = [Float](repeating: 0, count: C)
        RMSNorm.backward(dinp: &dx, dweight: &dw, dout: r, inp: x, weight: w, rstd: f.rstd, N: N, C: C)
        checkGradient("RMSNorm dx", at: x, analytic: dx) { weightedSum(forward($0, w).out, r) }
        checkGradient("RMSNorm dw", at: w, analytic: dw) { weightedSum(forward(x, $0).out, r) }
    }

    /// Input and output are column blocks of wider buffers (leading dimensions), as in the fused qkv.
    @Test func linearWithLeadingDimensions() {
        var rng = RandomStream(seed: 3)
        let (N, IC, OC, ldIn, ldOut) = (6, 7, 5, 9, 8)
        let x = randomArray(N * ldIn, &rng), w = randomArray(OC * IC, &rng), b = randomArray(OC, &rng)
        let r = randomArray(N * ldOut, &rng)
        func forward(_ x: [Float], _ w: [Float], _ b: [Float]) -> [Float] {
            var out = [Float](repeating: 0, count: N * ldOut)
            Linear.forward(out: &out, ldOut: ldOut, inp: x, ldIn: ldIn, weight: w, bias: b, N: N, IC: IC, OC: OC)
            return out
        }
        var dx = [Float](repeating: 0, count: N * ldIn), dw = [Float](repeating: 0, count: OC * IC), db = [Float](repeating: 0, count: OC)
        Linear.backward(dinp: &dx, ldDinp: ldIn, dweight: &dw, dbias: &db, dout: r, ldDout: ldOut, inp: x, ldIn: ldIn,
                        weight: w, N: N, IC: IC, OC: OC)
        checkGradient("Linear dx", at: x, analytic: dx) { weightedSum(forward($0, w, b), r) }
        checkGradient("Linear dw", at: w, analytic: dw) { weightedSum(forward(x, $0, b), r) }
        checkGradient("Linear db", at: b, analytic: db) { weightedSum(forward(x, w, $0), r) }
        // Columns outside the blocks are untouched.
        #expect((0..<N).allSatisfy { n in (IC..<ldIn).allSatisfy { dx[n * ldIn + $0] == 0 } })
    }

    @Test func gelu() {
        var rng = RandomStream(seed: 4)
        let x = randomArray(64, &rng, std: 2), r = randomArray(64, &rng)
        func forward(_ x: [Float]) -> [Float] {
            var out = [Float](repeating: 0, count: x.count)
            GELU.forward(out: &out, inp: x, count: x.count)
            return out
        }
        var dx = [Float](repeating: 0, count: 64)
        GELU.backward(dinp: &dx, inp: x, dout: r, count: 64)
        checkGradient("GELU", at: x, analytic: dx, h: 1e-3) { weightedSum(forward($0), r) }
        // The tanh approximation's known value.
        #expect(abs(forward([1])[0] - 0.8411920071) < 1e-6)
    }

    @Test func swiGLU() {
        var rng = RandomStream(seed: 5)
        let (N, I) = (3, 8)
        let gu = randomArray(N * 2 * I, &rng, std: 2), r = randomArray(N * I, &rng)
        func forward(_ gu: [Float]) -> [Float] {
            var out = [Float](repeating: 0, count: N * I)
            SwiGLU.forward(out: &out, gateUp: gu, N: N, I: I)
            return out
        }
        var d = [Float](repeating: 0, count: N * 2 * I)
        SwiGLU.backward(dgateUp: &d, gateUp: gu, dout: r, N: N, I: I)
        checkGradient("SwiGLU", at: gu, analytic: d, h: 1e-3) { weightedSum(forward($0), r) }
    }

    @Test func embedding() {
        var rng = RandomStream(seed: 6)
        let (B, T, C, V) = (2, 5, 4, 7)
        let ids: [Int32] = [1, 3, 3, 0, 6, 2, 2, 2, 5, 1]
        let wte = randomArray(V * C, &rng), wpe = randomArray(T * C, &rng), r = randomArray(B * T * C, &rng)
        func forward(_ wte: [Float], _ wpe: [Float]) -> [Float] {
            var out = [Float](repeating: 0, count: B * T * C)
            Embedding.forward(out: &out, ids: ids, wte: wte, wpe: wpe, B: B, T: T, C: C)
            return out
        }
        var dwte = [Float](repeating: 0, count: V * C), dwpe = [Float](repeating: 0, count: T * C)
        Embedding.backward(dwte: &dwte, dwpe: &dwpe, dout: r, ids: ids, B: B, T: T, C: C)
        checkGradient("Embedding dwte", at: wte, analytic: dwte) { weightedSum(forward($0, wpe), r) }
        checkGradient("Embedding dwpe", at: wpe, analytic: dwpe) { weightedSum(forward(wte, $0), r) }
    }

    @Test func rotary() {
        var rng = RandomStream(seed: 7)
        let (B, T, H, G, D) = (2, 5, 4, 2, 6)
        let S = (H + 2 * G) * D
        let rotary = Rotary(headDimension: D, maxPositions: 16, theta: 10000)
        let x = randomArray(B * T * S, &rng), r = randomArray(B * T * S, &rng)
        func forward(_ x: [Float]) -> [Float] {
            var y = x
            rotary.apply(qkv: &y, rowStride: S, queryHeads: H, kvHeads: G, kOffset: H * D, B: B, T: T)
            return y
        }
        var d = r
        rotary.apply(qkv: &d, rowStride: S, queryHeads: H, kvHeads: G, kOffset: H * D, B: B, T: T, inverse: true)
        checkGradient("Rotary", at: x, analytic: d) { weightedSum(forward($0), r) }
        // v columns pass through; position 0 is the identity.
        let y = forward(x)
        #expect((0..<(G * D)).allSatisfy { y[(H + G) * D + $0] == x[(H + G) * D + $0] })
        #expect((0..<(H * D)).allSatisfy { y[$0] == x[$0] })
    }

    @Test(arguments: [(4, 4), (4, 2), (4, 1)])
    func attention(H: Int, G: Int) {
        var rng = RandomStream(seed: 8)
        let (B, T, D) = (2, 7, 3)
        // Tiles smaller than T and not dividing it, so several tiles and the diagonal masking are exercised.
        let attention = Attention(B: B, T: T, H: H, G: G, D: D, queryTile: 3, keyTile: 2)
        let qkv = randomArray(B * T * attention.S, &rng), r = randomArray(B * T * H * D, &rng)
        let gates = (0..<H).map { _ in 1 + 0.3 * rng.nextNormal() }
        var scratch = [Float](repeating: 0, count: attention.scratchCount)
        func forward(_ qkv: [Float], _ gates: [Float]) -> (out: [Float], lse: [Float]) {
            var out = [Float](repeating: 0, count: B * T * H * D), lse = [Float](repeating: 0, count: B * H * T)
            attention.forward(out: &out, lse: &lse, qkv: qkv, scratch: &scratch, gates: gates)
            return (out, lse)
        }
        let f = forward(qkv, gates)
        var d = [Float](repeating: 0, count: qkv.count), dgates = [Float](repeating: 0, count: B * H)
        attention.backward(dqkv: &d, dout: r, qkv: qkv, out: f.out, lse: f.lse, scratch: &scratch, gates: gates,
                           dgates: &dgates, gateStride: H)
        checkGradient("Attention H\(H) G\(G)", at: qkv, analytic: d, samples: 80) { weightedSum(forward($0, gates).out, r) }
        let dgatesTotal = (0..<H).map { h in (0..<B).reduce(Float(0)) { $0 + dgates[$1 * H + h] } }
        checkGradient("Attention ∂/∂ξ H\(H) G\(G)", at: gates, analytic: dgatesTotal) { weightedSum(forward(qkv, $0).out, r) }
        // Causality: the first query of each row attends only to itself, so its output is ξ·v₀.
        let S = attention.S
        for b in 0..<B {
            for h in 0..<H {
                let v0 = qkv[(b * T) * S + (H + G + h / (H / G)) * D ..< (b * T) * S + (H + G + h / (H / G)) * D + D]
                let o0 = f.out[(b * T) * H * D + h * D ..< (b * T) * H * D + h * D + D]
                #expect(zip(o0, v0).allSatisfy { abs($0 - gates[h] * $1) < 1e-5 })
            }
        }
    }

    @Test func crossEntropy() {
        var rng = RandomStream(seed: 9)
        let (N, V) = (5, 11)
        let logits = randomArray(N * V, &rng, std: 3)
        let targets: [Int32] = [3, -100, 0, 10, 7]
        var d = [Float](repeating: 0, count: N * V)
        let total = CrossEntropy.forward(logits: logits, targets: targets, N: N, V: V, dlogits: &d, gradientScale: 0.25)
        checkGradient("CrossEntropy", at: logits, analytic: d, h: 1e-3) {
            0.25 * CrossEntropy.forward(logits: $0, targets: targets, N: N, V: V)
        }
        #expect((V..<(2 * V)).allSatisfy { d[$0] == 0 }, "ignored row has no gradient")
        // Against a direct computation.
        var expected = 0.0
        for (n, t) in targets.enumerated() where t >= 0 {
            let row = logits[(n * V)..<(n * V + V)].map(Double.init)
            let m = row.max()!
            expected += log(row.map { exp($0 - m) }.reduce(0, +)) + m - row[Int(t)]
        }
        #expect(abs(total - expected) < 1e-4)
        #expect(CrossEntropy.validCount(targets, N: N) == 4)
    }
}

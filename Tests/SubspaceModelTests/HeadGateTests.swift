import Foundation
import Testing
import SubspaceCore
@testable import SubspaceModel

/// Head gates ξ [L, H]: finite differences for ∂L/∂ξ (per batch row and summed), the weight gradients
/// through gates, and gate 0 against zeroing the output projection's input columns of that head.
@Suite struct HeadGateTests {
    /// Four query heads; llama and qwen2 with two key/value heads (grouped-query attention).
    static func tiny(_ family: ModelFamily) -> ModelConfig {
        ModelConfig(family: family, vocabularySize: 19, hiddenSize: 16, layerCount: 2, headCount: 4,
                    keyValueHeadCount: family == .gpt2 ? 4 : 2, intermediateSize: 20, maxPositions: 8,
                    tiedEmbeddings: family == .gpt2)
    }

    static func model(_ family: ModelFamily) -> Transformer {
        let model = Transformer(config: tiny(family))
        model.initialize(seed: 7, std: 0.35)
        return model
    }

    static let (B, T) = (3, 6)

    static func batch(_ c: ModelConfig) -> (ids: [Int32], targets: [Int32]) {
        var rng = RandomStream(seed: 5)
        let ids = (0..<(B * T)).map { _ in Int32(rng.nextInt(below: c.vocabularySize)) }
        var targets = ids.enumerated().map { $0.offset % T == T - 1 ? Int32(-100) : ids[$0.offset + 1] }
        targets[1] = -100
        targets[T + 2] = -100  // rows with different counts
        return (ids, targets)
    }

    static func gates(_ c: ModelConfig) -> [Float] {
        var rng = RandomStream(seed: 11)
        var g = (0..<(c.layerCount * c.headCount)).map { _ in 1 + 0.4 * rng.nextNormal() }
        g[1] = 0  // an ablated head still gets its gradient
        return g
    }

    @Test(arguments: ModelFamily.allCases)
    func gateGradientMatchesFiniteDifferences(family: ModelFamily) {
        let model = Self.model(family)
        let c = model.config, b = Self.batch(c), (B, T) = (Self.B, Self.T)
        model.frozen = Set(model.layout.entries.map(\.role))
        model.computesGateGradients = true
        let x = Self.gates(c)
        model.headGates = x
        model.forward(ids: b.ids, targets: b.targets, B: B, T: T)
        model.backward()
        let perRow = model.gateGradients.scalars
        let LH = c.layerCount * c.headCount
        let total = (0..<LH).map { i in (0..<B).reduce(Float(0)) { $0 + perRow[$1 * LH + i] } }
        checkGradient("\(family) ∂L/∂ξ", at: x, analytic: total, samples: LH, tolerance: 3e-3) { g in
            model.headGates = g
            return Double(model.forward(ids: b.ids, targets: b.targets, B: B, T: T)!)
        }
        // Row r's slice is the gradient of row r's loss terms (scaled by 1/all counted positions).
        let counted = b.targets.filter { $0 >= 0 }.count
        for r in 0..<B {
            let rowGradient = Array(perRow[(r * LH)..<((r + 1) * LH)])
            checkGradient("\(family) ∂L_row\(r)/∂ξ", at: x, analytic: rowGradient, samples: LH, tolerance: 3e-3) { g in
                model.headGates = g
                model.forward(ids: b.ids, targets: b.targets, B: B, T: T)
                return model.rowLosses().sums[r] / Double(counted)
            }
        }
    }

    @Test(arguments: ModelFamily.allCases)
    func weightGradientsThroughGates(family: ModelFamily) {
        let model = Self.model(family)
        let c = model.config, b = Self.batch(c), (B, T) = (Self.B, Self.T)
        model.headGates = Self.gates(c)
        let params = Array(UnsafeBufferPointer(start: model.parameterStorage.pointer, count: model.layout.totalCount))
        model.forward(ids: b.ids, targets: b.targets, B: B, T: T)
        model.zeroGradients()
        model.backward()
        let grads = Array(UnsafeBufferPointer(start: model.gradientStorage!.pointer, count: model.layout.totalCount))
        for role in [TensorRole.layer(0, .q), .layer(0, .k), .layer(0, .v), .layer(1, .o), .layer(0, .norm1Weight)] {
            let e = model.layout[role]
            checkGradient("\(family) \(e.name) with gates", at: Array(params[e.range]), analytic: Array(grads[e.range]),
                          samples: 16, tolerance: 5e-3) { s in
                var p = params
                p.replaceSubrange(e.range, with: s)
                p.withUnsafeBufferPointer { model.parameterStorage.pointer.update(from: $0.baseAddress!, count: $0.count) }
                return Double(model.forward(ids: b.ids, targets: b.targets, B: B, T: T)!)
            }
        }
    }

    @Test(arguments: ModelFamily.allCases)
    func unitGatesChangeNothingAndZeroGateIsColumnAblation(family: ModelFamily) {
        let model = Self.model(family)
        let c = model.config, b = Self.batch(c), (B, T) = (Self.B, Self.T)
        let plain = model.forward(ids: b.ids, targets: b.targets, B: B, T: T)!
        let plainLogits = model.logits.scalars
        model.headGates = [Float](repeating: 1, count: c.layerCount * c.headCount)
        #expect(model.forward(ids: b.ids, targets: b.targets, B: B, T: T)! == plain)
        #expect(model.logits.scalars == plainLogits, "\(family): unit gates must give bit-identical logits")

        let (l, h, D) = (1, 2, c.headDimension)
        var gates = model.headGates!
        gates[l * c.headCount + h] = 0
        model.headGates = gates
        let gated = model.forward(ids: b.ids, targets: b.targets, B: B, T: T)!
        let gatedLogits = model.logits.scalars

        let reference = Self.model(family)
        let o = reference.tensor(.layer(l, .o))
        #expect(o.shape == [c.hiddenSize, c.queryWidth])
        var w = o.scalars
        for row in 0..<c.hiddenSize { for col in (h * D)..<((h + 1) * D) { w[row * c.queryWidth + col] = 0 } }
        reference.setTensor(.layer(l, .o), Tensor(shape: o.shape, values: w))
        let ablated = reference.forward(ids: b.ids, targets: b.targets, B: B, T: T)!
        #expect(abs(gated - ablated) <= 1e-5 * abs(ablated), "\(family): gate 0 loss \(gated), zeroed columns \(ablated)")
        expectAllClose(gatedLogits, reference.logits.scalars, rtol: 1e-4, atol: 1e-5, "\(family) logits, gate 0 vs zeroed columns")
        #expect(abs(gated - plain) > 1e-6, "\(family): ablating a head should change the loss")
    }
}

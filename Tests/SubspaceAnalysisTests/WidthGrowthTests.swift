import Foundation
import Testing
import SubspaceCore
import SubspaceModel
@testable import SubspaceAnalysis

/// The width growth behind LoRA-X's different-width arm: the grown model computes the source's function.
@Suite struct WidthGrowthTests {
    /// A small model with every tensor random (gains and biases too, so the norms' rescaling is tested).
    static func model(_ family: ModelFamily, kvHeads: Int? = nil) -> Transformer {
        let c = ModelConfig(family: family, vocabularySize: 40, hiddenSize: 16, layerCount: 2, headCount: 4,
                            keyValueHeadCount: kvHeads, intermediateSize: family == .gpt2 ? 64 : 24, maxPositions: 16)
        let m = Transformer(config: c)
        m.initialize(seed: 5, std: 0.3)
        var rng = RandomStream(seed: 11)
        for e in m.layout.entries where e.shape.count == 1 {
            let t = m.tensor(e.role)
            let isGain = e.role.name.hasSuffix("norm1.weight") || e.role.name.hasSuffix("norm2.weight") || e.role == .finalNormWeight
            m.setTensor(e.role, isGain ? Tensor(shape: t.shape, values: t.scalars.map { _ in 0.5 + rng.nextUniform() })
                                       : Tensor.normal(t.shape, std: 0.3, using: &rng))
        }
        return m
    }

    @Test(arguments: [(ModelFamily.gpt2, nil as Int?), (.llama, 2), (.qwen2, nil)])
    func grownModelComputesTheSameFunction(family: ModelFamily, kvHeads: Int?) throws {
        let small = Self.model(family, kvHeads: kvHeads)
        let grown = try WidthGrowth.grow(small, width: 24, noise: 0.05, seed: 3)
        let g = grown.config
        #expect(g.hiddenSize == 24 && g.headCount == 6 && g.headDimension == 4)
        #expect(g.keyValueHeadCount == (kvHeads ?? 4) * 3 / 2 && g.intermediateSize == small.config.intermediateSize * 3 / 2)
        // The new units are really there (noise in the readers), not a zero-padded copy.
        let q = grown.tensor(.layer(0, .q))
        #expect(q.scalars[q.shape[1] - 1] != 0)
        let (B, T) = (2, 10)
        var rng = RandomStream(seed: 9)
        let ids = (0..<(B * T)).map { _ in Int32(rng.nextInt(below: 40)) }
        let targets = ids.dropFirst().map { $0 } + [ids[0]]
        let lossSmall = try #require(small.forward(ids: ids, targets: targets, B: B, T: T))
        let lossGrown = try #require(grown.forward(ids: ids, targets: targets, B: B, T: T))
        #expect(abs(lossSmall - lossGrown) < 1e-4, "loss \(lossSmall) vs \(lossGrown)")
        _ = small.forward(ids: ids, B: B, T: T)
        _ = grown.forward(ids: ids, B: B, T: T)
        let (a, b) = (small.logits.scalars, grown.logits.scalars)
        #expect(a.count == b.count)
        let worst = zip(a, b).map { abs($0 - $1) }.max() ?? .infinity
        let scale = a.map(abs).max() ?? 1
        #expect(worst < 1e-4 * max(1, scale), "\(family): largest logit difference \(worst) (logits up to \(scale))")
        // Without the norm's rescaling the function would change: a check that the test can fail.
        let unscaled = try WidthGrowth.grow(small, width: 24, noise: 0.05, seed: 3)
        unscaled.setTensor(.finalNormWeight, Tensor(shape: [24], values: [Float](repeating: 1, count: 24)))
        _ = unscaled.forward(ids: ids, B: B, T: T)
        #expect((zip(a, unscaled.logits.scalars).map { abs($0 - $1) }.max() ?? 0) > 1e-2)
    }

    /// An adapter grown with the model (`WidthGrowth.grow(_:from:to:)`) keeps the adapted function: the grown
    /// model with it gives the source model's logits with the source adapter — every module adapted, B nonzero.
    @Test(arguments: [(ModelFamily.gpt2, nil as Int?), (.llama, 2), (.qwen2, nil)])
    func grownAdapterKeepsTheAdaptedFunction(family: ModelFamily, kvHeads: Int?) throws {
        let small = Self.model(family, kvHeads: kvHeads)
        let grown = try WidthGrowth.grow(small, width: 24, noise: 0.05, seed: 3)
        let names = family == .gpt2 ? ["c_attn", "c_proj", "c_fc"] : ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
        let adapters = try LoRAAdapters(config: LoRAConfig(rank: 3, alpha: 6, targets: .names(names)), model: small.config, seed: 4)
        var rng = RandomStream(seed: 21)
        for a in adapters.adapters {
            adapters.setFactor(a, b: true, Tensor.normal([a.module.outFeatures, 3], std: 0.3, using: &rng))
        }
        let grownAdapters = try WidthGrowth.grow(adapters, from: small.config, to: grown.config)
        #expect(grownAdapters.adapters.count == adapters.adapters.count)
        let (B, T) = (2, 10)
        let ids = (0..<(B * T)).map { _ in Int32(rng.nextInt(below: 40)) }
        func logits(_ m: Transformer, _ a: LoRAAdapters?) -> [Float] {
            m.adapters = a
            _ = m.forward(ids: ids, B: B, T: T)
            return m.logits.scalars
        }
        let plain = logits(small, nil), adapted = logits(small, adapters), carried = logits(grown, grownAdapters)
        let scale = adapted.map(abs).max() ?? 1
        #expect((zip(plain, adapted).map { abs($0 - $1) }.max() ?? 0) > 1e-2, "the adapter changes the function")
        let worst = zip(adapted, carried).map { abs($0 - $1) }.max() ?? .infinity
        #expect(worst < 1e-4 * max(1, scale), "\(family): largest logit difference \(worst) (logits up to \(scale))")
        if family == .gpt2 {
            // Zero instead of the column means in a writer's new rows breaks it under LayerNorm: the test can fail.
            for a in grownAdapters.adapters where a.module.parts == [.o] || a.module.parts == [.down] {
                var b = grownAdapters.factor(a, b: true).scalars
                for i in (16 * 3)..<b.count { b[i] = 0 }
                grownAdapters.setFactor(a, b: true, Tensor(shape: [a.module.outFeatures, 3], values: b))
            }
            #expect((zip(adapted, logits(grown, grownAdapters)).map { abs($0 - $1) }.max() ?? 0) > 1e-3)
        }
    }

    @Test func widthsThatDoNotScaleTheHeadsAreErrors() throws {
        let small = Self.model(.gpt2)
        #expect(throws: AnalysisError.self) { try WidthGrowth.grownConfig(small.config, width: 16) }
        #expect(throws: AnalysisError.self) { try WidthGrowth.grownConfig(small.config, width: 18) }
    }
}

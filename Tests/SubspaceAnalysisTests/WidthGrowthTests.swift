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

    @Test func widthsThatDoNotScaleTheHeadsAreErrors() throws {
        let small = Self.model(.gpt2)
        #expect(throws: AnalysisError.self) { try WidthGrowth.grownConfig(small.config, width: 16) }
        #expect(throws: AnalysisError.self) { try WidthGrowth.grownConfig(small.config, width: 18) }
    }
}

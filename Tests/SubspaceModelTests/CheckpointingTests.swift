import Foundation
import Testing
import SubspaceCore
@testable import SubspaceModel

/// Activation checkpointing recomputes each layer in backward and runs the head in chunks: the loss and
/// every gradient (base, LoRA factors, head gates) must be the same bit for bit as without it.
@Suite struct CheckpointingTests {
    struct Outcome: Equatable {
        var loss: Float
        var gradients: [Float]
        var adapterGradients: [Float]
        var gateGradients: [Float]
    }

    /// Two optimizer-free steps (so the dropout stream moves on between passes) of a tiny model with
    /// dropout, LoRA with dropout (on a trainable base, so both kinds of gradient are exercised) and
    /// head gates; head chunks of 5 rows over 12, so the last chunk is partial.
    func run(_ family: ModelFamily, _ mode: ActivationCheckpointing, lora: Bool, vocabulary: Int = 17) throws -> Outcome {
        let config = ModelGradientTests.tiny(family, vocabulary: vocabulary)
        let model = Transformer(config: config)
        model.initialize(seed: 21, std: 0.3)
        model.activationCheckpointing = mode
        model.headChunkRows = 5
        model.dropout = 0.2
        model.training = true
        model.reseedDropout(seed: 9, step: 1)
        if lora {
            let adapters = try LoRAAdapters(config: LoRAConfig(rank: 2, alpha: 3, targets: .names(family == .gpt2 ? ["c_attn", "c_proj", "c_fc"] : ["q_proj", "o_proj", "up_proj", "down_proj"]),
                                                               dropout: 0.25), model: config, seed: 2)
            var rng = RandomStream(seed: 8)
            rng.fillNormal(UnsafeMutableBufferPointer(start: adapters.storage.pointer, count: adapters.totalCount), std: 0.25)
            adapters.training = true
            adapters.reseedDropout(seed: 4, step: 1)
            model.adapters = adapters
        }
        model.headGates = (0..<(config.layerCount * config.headCount)).map { 0.5 + 0.1 * Float($0) }
        model.computesGateGradients = true
        var rng = RandomStream(seed: 31)
        var loss: Float = 0
        model.zeroGradients()
        for _ in 0..<2 {
            let ids = (0..<12).map { _ in Int32(rng.nextInt(below: config.vocabularySize)) }
            var targets = ids.enumerated().map { $0.offset % 6 == 5 ? Int32(-100) : ids[$0.offset + 1] }
            targets[3] = -100
            loss += model.forward(ids: ids, targets: targets, B: 2, T: 6)!
            model.backward()
        }
        return Outcome(loss: loss,
                       gradients: Array(UnsafeBufferPointer(start: model.gradientStorage!.pointer, count: model.layout.totalCount)),
                       adapterGradients: model.adapters.map { Array(UnsafeBufferPointer(start: $0.gradientStorage.pointer, count: $0.totalCount)) } ?? [],
                       gateGradients: model.gateGradients.scalars)
    }

    /// Vocabulary 150 as well as 17: several vocabulary slices (the head's online softmax and, for a tied
    /// GPT-2, the embedding's weight gradient made at the end of backward from kept or recomputed ∂logits).
    @Test(arguments: ModelFamily.allCases, [false, true])
    func bitIdentical(family: ModelFamily, lora: Bool) throws {
        for vocabulary in [17, 150] {
            let plain = try run(family, .none, lora: lora, vocabulary: vocabulary)
            let checkpointed = try run(family, .layers, lora: lora, vocabulary: vocabulary)
            #expect(plain.gradients.contains { $0 != 0 } && plain.gateGradients.contains { $0 != 0 })
            #expect(!lora || plain.adapterGradients.contains { $0 != 0 })
            #expect(plain.loss == checkpointed.loss, "\(family) V=\(vocabulary) loss")
            #expect(plain.gradients == checkpointed.gradients, "\(family) V=\(vocabulary) base gradients")
            #expect(plain.adapterGradients == checkpointed.adapterGradients, "\(family) V=\(vocabulary) LoRA gradients")
            #expect(plain.gateGradients == checkpointed.gateGradients, "\(family) V=\(vocabulary) gate gradients")
        }
    }

    /// Under checkpointing a forward without targets still keeps the logits, equal to the plain ones;
    /// with targets the loss is the same and the per-row losses too.
    @Test func logitsAndRowLosses() {
        let config = ModelGradientTests.tiny(.llama)
        func model(_ mode: ActivationCheckpointing) -> Transformer {
            let m = Transformer(config: config)
            m.initialize(seed: 5, std: 0.3)
            m.activationCheckpointing = mode
            m.headChunkRows = 4
            return m
        }
        let (plain, checkpointed) = (model(.none), model(.layers))
        let ids: [Int32] = [1, 5, 9, 2, 7, 3, 3, 8, 0, 16, 4, 6]
        let targets: [Int32] = [5, 9, 2, 7, 3, -100, 8, 0, 16, 4, 6, 1]
        plain.forward(ids: ids, B: 2, T: 6)
        checkpointed.forward(ids: ids, B: 2, T: 6)
        #expect(plain.logits.scalars == checkpointed.logits.scalars)
        let a = plain.forward(ids: ids, targets: targets, B: 2, T: 6)
        let b = checkpointed.forward(ids: ids, targets: targets, B: 2, T: 6)
        #expect(a == b)
        #expect(plain.rowLosses().sums == checkpointed.rowLosses().sums)
        #expect(plain.rowLosses().counts == [5, 6])
    }
}

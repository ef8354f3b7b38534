import Foundation
import Testing
import SubspaceCore
import SubspaceDistributed
@testable import SubspaceModel
@testable import SubspaceTraining

/// bf16 weight copies are made once per optimizer step, not per micro-batch: with 4 micro-batches of
/// accumulation each block is converted once a step (ZeRO 0), a LoRA run's frozen base once for the
/// whole run, and ZeRO-3 converts a block at each gather (forward and backward of every micro-batch);
/// losses, parameters and adapters are bit-identical to converting at every use (emulated bf16 products).
@Suite struct BF16StepTests {
    enum Variant: String, CaseIterable, Sendable { case full, lora, zero3 }

    struct Run { var losses: [Double] = [], parameters: [Float] = [], adapter: [Float] = [], conversions: [Int] = [], blocks = 0 }

    static func train(_ variant: Variant, everyUse: Bool) throws -> Run {
        try LocalCluster.run(size: 1) { comm -> Run in
            let config = ZeroEngineTests.config
            let stage = variant == .zero3 ? 3 : 0
            let model = Transformer(config: config)
            if stage < 3 { model.initialize(seed: 9, std: 0.2) }
            if variant == .lora {
                let adapters = try LoRAAdapters(config: LoRAConfig(rank: 2, alpha: 4, targets: .names(["q_proj", "down_proj"])),
                                                model: config, seed: 9)
                adapters.training = true
                model.adapters = adapters
                model.frozen = Set(model.layout.entries.map(\.role))
            }
            model.precision = .bf16
            model.bf16Backend = .emulated
            model.lowPrecision?.convertsEveryUse = everyUse
            let engine = ZeroEngine(model: model, communicator: comm, stage: stage, adam: ZeroEngineTests.adam, maxGradientNorm: 0.5)
            if stage == 3 { engine.loadParameters { model.initialValues(seed: 9, std: 0.2, range: $0, into: $1) } }
            let runner = StepRunner(engine: engine)
            var out = Run(blocks: model.layout.blockCount)
            for s in 0..<ZeroEngineTests.steps {
                let before = model.bf16Conversions
                model.training = true
                // Micro-batches of one sequence: `globalBatch` (4) accumulation steps.
                out.losses.append(try runner.run(ZeroEngineTests.batch(step: s, rank: 0, ranks: 1, microBatch: 1),
                                                 learningRate: 1e-2, step: s).loss)
                model.training = false
                out.conversions.append(model.bf16Conversions - before)
            }
            out.parameters = try engine.fullParameters()
            if let a = model.adapters { out.adapter = Array(UnsafeBufferPointer(start: a.storage.pointer, count: a.totalCount)) }
            return out
        }[0]
    }

    @Test(arguments: Variant.allCases)
    func convertsOncePerStep(variant: Variant) throws {
        let kept = try Self.train(variant, everyUse: false), reference = try Self.train(variant, everyUse: true)
        let (blocks, steps, micro) = (kept.blocks, ZeroEngineTests.steps, ZeroEngineTests.globalBatch)
        let expected = switch variant {
        case .full: [Int](repeating: blocks, count: steps)
        case .lora: [blocks] + [Int](repeating: 0, count: steps - 1)
        case .zero3: [Int](repeating: 2 * blocks * micro, count: steps)
        }
        #expect(kept.conversions == expected, "\(variant): conversions per step")
        // Converting at every use: each forward and backward of each micro-batch (what ZeRO-3 does anyway).
        #expect(reference.conversions == [Int](repeating: 2 * blocks * micro, count: steps), "\(variant): reference")
        #expect(kept.losses == reference.losses, "\(variant)")
        #expect(kept.parameters == reference.parameters, "\(variant)")
        #expect(kept.adapter == reference.adapter, "\(variant)")
        #expect(Set(kept.losses).count == steps, "\(variant): training moved")
    }
}

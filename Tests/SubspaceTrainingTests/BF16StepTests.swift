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
        // Converting at every use: each forward and backward of each micro-batch (what ZeRO-3 does anyway);
        // a LoRA backward does not visit the token embedding's slices (they get no gradient).
        let backwardBlocks = variant == .lora ? blocks - ParameterLayout(config: ZeroEngineTests.config).tokenEmbeddingBlocks.count : blocks
        #expect(reference.conversions == [Int](repeating: (blocks + backwardBlocks) * micro, count: steps), "\(variant): reference")
        #expect(kept.losses == reference.losses, "\(variant)")
        #expect(kept.parameters == reference.parameters, "\(variant)")
        #expect(kept.adapter == reference.adapter, "\(variant)")
        #expect(Set(kept.losses).count == steps, "\(variant): training moved")
    }

    /// `MemoryEstimate` in bf16 adds the weights' bf16 copies (2 bytes per parameter at ZeRO 0, what a bf16
    /// model holds after a pass; only the blocks in use at ZeRO-3) and the products' rounded operands.
    @Test func memoryEstimateCountsTheBF16Copies() throws {
        let config = ModelConfig(family: .gpt2, vocabularySize: 256, hiddenSize: 64, layerCount: 2, headCount: 4, maxPositions: 32)
        func estimate(_ precision: Precision, stage: Int) -> MemoryEstimate {
            MemoryEstimate(model: config, microBatch: 2, sequence: 32, zeroStage: stage, worldSize: 2, precision: precision)
        }
        var copies: [Double] = []
        for stage in [0, 3] {
            let (fp32, bf16) = (estimate(.fp32, stage: stage), estimate(.bf16, stage: stage))
            #expect(bf16.terms.count == fp32.terms.count + 2)
            let added = bf16.terms.filter { $0.what.hasPrefix("bf16 ") }
            #expect(added.count == 2)
            #expect(abs(bf16.total - fp32.total - added.reduce(0) { $0 + $1.bytes }) < 1)
            let copy = try #require(added.first { $0.key == "training.precision" })
            #expect(copy.kind == (stage == 3 ? .buffers : .states))
            copies.append(copy.bytes)
        }
        // Measured: a bf16 model holds every block's copy after a forward pass (padding aside).
        let model = Transformer(config: config)
        model.initialize(seed: 1)
        model.precision = .bf16
        model.bf16Backend = .emulated
        model.forward(ids: [Int32](repeating: 7, count: 64), B: 2, T: 32)
        let held = Double(model.bf16WeightBytes)
        #expect(abs(held - copies[0]) / held < 0.02, "estimate \(copies[0]) bytes, held \(held)")
        // ZeRO-3: one block of each kind (a vocabulary slice, a layer, a small block: position embedding or final norm).
        let layout = model.layout
        func largest(_ kinds: Set<BlockKind>) -> Int {
            layout.blockRanges.indices.filter { kinds.contains(layout.blockKinds[$0]) }.map { layout.blockRanges[$0].count }.max() ?? 0
        }
        let inUse = 2 * Double(largest([.vocabularySlice]) + largest([.layer]) + largest([.positionEmbedding, .finalNorm]))
        #expect(abs(inUse - copies[1]) / inUse < 0.02, "estimate \(copies[1]) bytes, blocks in use \(inUse)")
    }
}

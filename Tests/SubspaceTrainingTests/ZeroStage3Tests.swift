import Foundation
import Testing
import SubspaceCore
import SubspaceDistributed
import SubspaceModel
@testable import SubspaceTraining

/// ZeRO-3 built shard by shard (no whole model on any rank) against ZeRO-0 on the same ranks: the same
/// losses, final parameters and AdamW moments (not only losses), for an untied llama, a tied GPT-2 with
/// dropout, and LoRA (with its own dropout); and no full-size parameter or gradient buffer at stage 3.
/// The vocabularies span several layer blocks, so the embedding (and llama's untied head) are several
/// vocabulary slices, and no buffer is larger than about a layer block.
@Suite struct ZeroStage3Tests {
    enum Variant: String, CaseIterable, Sendable { case llama, tiedWithDropout, lora }

    static func config(_ v: Variant) -> ModelConfig {
        v == .llama ? ModelConfig(family: .llama, vocabularySize: 400, hiddenSize: 16, layerCount: 2, headCount: 4,
                                  keyValueHeadCount: 2, intermediateSize: 24, maxPositions: 8)
                    : ModelConfig(family: .gpt2, vocabularySize: 500, hiddenSize: 16, layerCount: 2, headCount: 4, maxPositions: 8)
    }

    struct Outcome {
        var losses: [Double] = [], parameters: [Float] = [], m: [Float] = [], v: [Float] = []
        var adapter: [Float] = [], adapterM: [Float] = [], adapterV: [Float] = [], logits: [Float] = []
        var resident = ZeroEngine.ResidentBytes(), modelBytes = 0, total = 0, layerBlock = 0, slices = 0
    }

    static func train(_ variant: Variant, stage: Int, ranks: Int) throws -> [Outcome] {
        try LocalCluster.run(size: ranks) { comm -> Outcome in
            let config = Self.config(variant)
            let model = Transformer(config: config)
            if stage < 3 { model.initialize(seed: 9, std: 0.2) }  // stage 3: each rank fills its shards below
            if variant == .tiedWithDropout { model.dropout = 0.1 }
            if variant == .lora {
                let adapters = try LoRAAdapters(config: LoRAConfig(rank: 2, alpha: 4, targets: .names(["c_attn", "c_fc"]), dropout: 0.1),
                                                model: config, seed: 9)
                adapters.training = true
                model.adapters = adapters
                model.frozen = Set(model.layout.entries.map(\.role))
            }
            let engine = ZeroEngine(model: model, communicator: comm, stage: stage, adam: ZeroEngineTests.adam, maxGradientNorm: 0.5)
            if stage == 3 { engine.loadParameters { model.initialValues(seed: 9, std: 0.2, range: $0, into: $1) } }
            let runner = StepRunner(engine: engine)
            var out = Outcome()
            for s in 0..<ZeroEngineTests.steps {
                model.reseedDropout(seed: 1, step: s)
                model.adapters?.reseedDropout(seed: 1, step: s)
                model.training = true
                // One micro-batch per rank: stage 0 sums micro-batches before the all-reduce, stage 3 after each
                // reduce-scatter, and AdamW turns that reassociation into visible parameter differences where a
                // gradient is near zero (losses with accumulation: ZeroEngineTests).
                let micro = ZeroEngineTests.globalBatch / ranks
                out.losses.append(try runner.run(ZeroEngineTests.batch(step: s, rank: comm.rank, ranks: ranks, microBatch: micro,
                                                                       vocabulary: config.vocabularySize),
                                                 learningRate: 1e-2, step: s).loss)
                model.training = false
            }
            out.resident = engine.residentBytes
            out.modelBytes = model.residentParameterBytes
            out.total = model.layout.totalCount
            out.layerBlock = model.layout.layerRanges[0].count
            out.slices = model.layout.vocabularyRows.count
            // Evaluation after training gathers blocks as training does.
            let eval = ZeroEngineTests.batch(step: 99, rank: 0, ranks: 1, microBatch: 2, vocabulary: config.vocabularySize)[0]
            model.adapters?.training = false
            model.forward(ids: eval.ids, B: 2, T: ZeroEngineTests.T)
            out.logits = model.logits.scalars
            out.parameters = try engine.fullParameters()
            (out.m, out.v) = try engine.fullMoments()
            if let a = model.adapters {
                out.adapter = Array(UnsafeBufferPointer(start: a.storage.pointer, count: a.totalCount))
                out.adapterM = Array(UnsafeBufferPointer(start: engine.adapterM!.pointer, count: a.totalCount))
                out.adapterV = Array(UnsafeBufferPointer(start: engine.adapterV!.pointer, count: a.totalCount))
            }
            return out
        }
    }

    /// max |a − b| / (1e-6 + max |b|) over the arrays: a relative error that tolerates reassociation.
    static func difference(_ a: [Float], _ b: [Float]) -> Float {
        precondition(a.count == b.count)
        let scale = b.map(abs).max() ?? 0
        return zip(a, b).map { abs($0 - $1) }.max().map { $0 / (1e-6 + scale) } ?? 0
    }

    @Test(arguments: Variant.allCases, [1, 2, 3])
    func stage3EqualsStage0(variant: Variant, ranks: Int) throws {
        let zero = try Self.train(variant, stage: 0, ranks: ranks)
        let three = try Self.train(variant, stage: 3, ranks: ranks)
        for r in 0..<ranks {
            let (a, b) = (three[r], zero[r])
            for (s, (x, y)) in zip(a.losses, b.losses).enumerated() {
                #expect(abs(x - y) <= 1e-5 * abs(y), "\(variant) rank \(r) step \(s): \(x) vs \(y)")
            }
            let checks: [(String, [Float], [Float])] = [("parameters", a.parameters, b.parameters), ("m", a.m, b.m), ("v", a.v, b.v),
                                                         ("adapter", a.adapter, b.adapter), ("adapter m", a.adapterM, b.adapterM),
                                                         ("adapter v", a.adapterV, b.adapterV), ("logits", a.logits, b.logits)]
            for (what, x, y) in checks {
                let d = Self.difference(x, y)
                #expect(d <= 1e-5, "\(variant), \(ranks) ranks, rank \(r): \(what) differ by \(d) (relative to the largest)")
            }
            if variant != .lora { #expect(b.m.contains { $0 != 0 }, "the moments should have moved") }
            // No full-size parameter or gradient buffer at stage 3; a rank holds about 1/N of the parameters.
            #expect(a.modelBytes == 0, "\(variant): the model holds \(a.modelBytes) bytes of full buffers at stage 3")
            #expect(a.resident.largestBuffer < a.total * 4, "\(variant): a buffer of \(a.resident.largestBuffer) bytes ≥ the model's \(a.total * 4)")
            // Nothing larger than a layer block: a vocabulary slice is whole rows, at most one row (16 floats)
            // plus the alignment padding (16) over a layer.
            #expect(a.slices >= 3, "\(variant): the vocabulary should span several slices")
            #expect(a.resident.largestBuffer <= (a.layerBlock + 32) * 4,
                    "\(variant): a buffer of \(a.resident.largestBuffer) bytes > a layer block's \(a.layerBlock * 4)")
            #expect(a.resident.parameters <= a.total * 4 / ranks + 64, "\(variant): \(a.resident)")
            #expect(b.modelBytes >= b.total * 4, "stage 0 holds the whole model")
        }
    }

    /// A checkpoint written by 2 ranks at stage 3 loads exactly into 1, 2 or 3 ranks at any stage, and
    /// each rank opens only the rank files that overlap its part (2 → 2 at stage 3: one file each).
    @Test func checkpointLoadsInPartsAtAnyWorldSize() throws {
        let folder = NSTemporaryDirectory() + "subspace-z3-ckpt-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: folder) }
        @Sendable func engine(_ comm: any Communicator, stage: Int) -> ZeroEngine {
            let model = Transformer(config: Self.config(.llama))
            return ZeroEngine(model: model, communicator: comm, stage: stage, adam: ZeroEngineTests.adam, maxGradientNorm: 0.5)
        }
        let written = try LocalCluster.run(size: 2) { comm -> ([Float], [Float], [Float]) in
            let e = engine(comm, stage: 3)
            let model = e.model
            e.loadParameters { model.initialValues(seed: 9, std: 0.2, range: $0, into: $1) }
            let runner = StepRunner(engine: e)
            for s in 0..<2 { _ = try runner.run(ZeroEngineTests.batch(step: s, rank: comm.rank, ranks: 2, microBatch: 2, vocabulary: 400), learningRate: 1e-2, step: s) }
            try CheckpointStore(folder: folder).save(engine: e, step: 2, keep: 1)
            let (m, v) = try e.fullMoments()
            return (try e.fullParameters(), m, v)
        }[0]
        let checkpoint = CheckpointStore(folder: folder).completed().last!.path
        // Read in pieces from the rank files, as delta-svd reads a teacher: any range, the checkpoint's values.
        let weights = try CheckpointWeights(checkpoint: checkpoint)
        for r in [0..<written.0.count, 3..<77, (written.0.count / 2 - 5)..<(written.0.count / 2 + 9)] {
            var piece = [Float](repeating: .nan, count: r.count)
            try piece.withUnsafeMutableBufferPointer { try weights.read(r, into: $0.baseAddress!) }
            #expect(piece == Array(written.0[r]), "CheckpointWeights range \(r)")
        }
        for (ranks, stage, files) in [(2, 3, 1), (3, 3, 2), (1, 0, 2), (2, 0, 1), (2, 1, 1), (3, 2, 2)] {
            let loaded = try LocalCluster.run(size: ranks) { comm -> ([Float], [Float], [Float], Int) in
                let e = engine(comm, stage: stage)
                let restored = try CheckpointStore.load(checkpoint, into: e)
                let (m, v) = try e.fullMoments()
                return (try e.fullParameters(), m, v, restored.filesRead)
            }
            for (r, l) in loaded.enumerated() {
                #expect(l.0 == written.0 && l.1 == written.1 && l.2 == written.2, "\(ranks) ranks, stage \(stage), rank \(r): not the checkpoint's values")
                #expect(l.3 <= files, "\(ranks) ranks, stage \(stage), rank \(r): read \(l.3) of 2 files")
            }
        }
        // The manifest records the block partition the writer's parts follow; one that does not tile this
        // layout (another layout version) is refused naming the blocks, not misread.
        let manifestPath = checkpoint + "/" + CheckpointStore.manifestName
        var manifest = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: manifestPath))) as? [String: Any])
        let blocks = try #require(manifest["blocks"] as? [Int])
        #expect(blocks == Transformer(config: Self.config(.llama)).layout.blockRanges.map(\.count))
        manifest["blocks"] = [blocks.reduce(0, +) + 16]
        try JSONSerialization.data(withJSONObject: manifest).write(to: URL(fileURLWithPath: manifestPath))
        #expect { _ = try CheckpointStore.inspect(checkpoint, model: Transformer(config: Self.config(.llama))) } throws: { error in
            "\(error)".contains("blocks cover")
        }
    }
}

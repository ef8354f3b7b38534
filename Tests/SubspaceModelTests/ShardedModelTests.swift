import Foundation
import Testing
import SubspaceCore
@testable import SubspaceModel

/// Pieces of a model without the whole model: seeded initialisation of any range, an HF folder read
/// range by range, and an HF folder written block by block — each against the whole-model path.
@Suite struct ShardedModelTests {
    static let configs = [
        ModelConfig(family: .gpt2, vocabularySize: 37, hiddenSize: 16, layerCount: 2, headCount: 4, maxPositions: 12),
        ModelConfig(family: .llama, vocabularySize: 29, hiddenSize: 16, layerCount: 2, headCount: 4, keyValueHeadCount: 2,
                    intermediateSize: 24, maxPositions: 8),
        // Vocabularies of several layer blocks: the embedding (and llama's untied head) in vocabulary slices.
        ModelConfig(family: .gpt2, vocabularySize: 500, hiddenSize: 16, layerCount: 2, headCount: 4, maxPositions: 12),
        ModelConfig(family: .llama, vocabularySize: 400, hiddenSize: 16, layerCount: 2, headCount: 4, keyValueHeadCount: 2,
                    intermediateSize: 24, maxPositions: 8),
    ]

    func temporary() -> String {
        let path = NSTemporaryDirectory() + "subspace-sharded-\(UUID().uuidString)"
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// Ranges cutting tensors at odd and even offsets, and the whole buffer.
    static func ranges(_ total: Int) -> [Range<Int>] {
        var rng = RandomStream(seed: 5)
        var out = [0..<total, 0..<1, (total - 3)..<total]
        for _ in 0..<20 {
            let a = rng.nextInt(below: total), b = rng.nextInt(below: total)
            out.append(min(a, b)..<(max(a, b) + 1))
        }
        return out
    }

    @Test(arguments: configs)
    func initialValuesOfAnyRangeMatchTheWholeInitialisation(config: ModelConfig) {
        let whole = Transformer(config: config)
        whole.initialize(seed: 11, std: 0.3)
        let all = Array(UnsafeBufferPointer(start: whole.parameterStorage.pointer, count: whole.layout.totalCount))
        let shell = Transformer(config: config)
        for r in Self.ranges(all.count) {
            var piece = [Float](repeating: .nan, count: r.count)
            piece.withUnsafeMutableBufferPointer { shell.initialValues(seed: 11, std: 0.3, range: r, into: $0.baseAddress!) }
            #expect(piece == Array(all[r]), "range \(r)")
        }
        #expect(shell.allocatedParameters == nil, "initialValues allocated the whole buffer")
    }

    /// A folder saved whole (f32 sharded into several files, and bf16) read back range by range.
    @Test(arguments: configs)
    func readerCopiesAnyRange(config: ModelConfig) throws {
        let model = Transformer(config: config)
        model.initialize(seed: 3, std: 0.5)
        for dtype in [DType.f32, .bf16, .f16] {
            let folder = temporary()
            defer { try? FileManager.default.removeItem(atPath: folder) }
            try HFCheckpoint.save(model, to: folder, dtype: dtype, maxShardBytes: 2000)
            #expect(FileManager.default.fileExists(atPath: folder + "/" + TensorFolder.indexName), "expected a sharded folder")
            let expected = try HFCheckpoint.load(folder: folder)  // whole tensors through pack/unpack
            let all = Array(UnsafeBufferPointer(start: expected.parameterStorage.pointer, count: expected.layout.totalCount))
            if dtype == .f32 {
                #expect(all == Array(UnsafeBufferPointer(start: model.parameterStorage.pointer, count: model.layout.totalCount)))
            }
            let reader = try HFModelReader(folder: folder)
            for r in Self.ranges(all.count) {
                var piece = [Float](repeating: .nan, count: r.count)
                try piece.withUnsafeMutableBufferPointer { try reader.read(r, into: $0.baseAddress!) }
                #expect(piece == Array(all[r]), "\(dtype) range \(r)")
            }
        }
    }

    /// Written block by block, by 1 or 3 "ranks" in turn, one file or several: the same tensors, bytes
    /// and config as `HFCheckpoint.save`.
    @Test(arguments: configs)
    func blockExportEqualsWholeSave(config: ModelConfig) throws {
        let model = Transformer(config: config)
        model.initialize(seed: 4, std: 0.5)
        let reference = temporary()
        defer { try? FileManager.default.removeItem(atPath: reference) }
        try HFCheckpoint.save(model, to: reference)
        let expected = try TensorFolder(folder: reference)
        for (ranks, maxShardBytes) in [(1, 5 << 30), (3, 5 << 30), (3, 3000), (2, 1)] {
            let folder = temporary()
            defer { try? FileManager.default.removeItem(atPath: folder) }
            let plan = HFBlockExport(config: config, ranks: ranks, maxShardBytes: maxShardBytes)
            var seen: [Int] = []
            for rank in 0..<ranks {
                try plan.writeFiles(rank: rank, folder: folder) { b in
                    seen.append(b)
                    return UnsafePointer(model.parameterStorage.pointer + model.layout.blockRanges[b].lowerBound)
                }
            }
            try plan.finish(folder: folder)
            #expect(seen == Array(0..<ranks).flatMap { _ in Array(0..<model.layout.blockCount) }, "every rank walks every block in order")
            #expect(plan.files.count == 1 ? !FileManager.default.fileExists(atPath: folder + "/" + TensorFolder.indexName) : true)
            let written = try TensorFolder(folder: folder)
            #expect(written.names == expected.names, "ranks \(ranks), max \(maxShardBytes)")
            for name in expected.names {
                #expect(try written.tensor(name) == expected.tensor(name), "\(name), ranks \(ranks), max \(maxShardBytes)")
            }
            #expect(try ModelConfig(hfConfigAt: folder + "/config.json") == config)
        }
    }
}

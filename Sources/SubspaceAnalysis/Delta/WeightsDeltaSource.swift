import Foundation
import SubspaceCore
import SubspaceDistributed
import SubspaceModel
import SubspaceTraining

/// ΔW between two models on disk, each an HF folder or a Subspace training checkpoint (a `step-N`
/// folder, or a run folder for its newest checkpoint): a ZeRO-3 teacher's ΔW straight from its per-rank
/// checkpoint files, without ever writing or gathering the whole teacher. Each module's owner reads its
/// parts from both sides (`ModelWeightReader.read`), so a rank touches only its modules' pieces and
/// checks only the checkpoint files that hold them. Numbers equal those from HF folders of the same
/// weights: the same [out, in] matrices go to the same decompositions.
public final class WeightsDeltaSource: DeltaSource, @unchecked Sendable {
    public let base: any ModelWeightReader
    public let tuned: any ModelWeightReader
    public let modules: [DeltaModule]
    public let otherTensors: [DeltaTensorInfo]
    public let warnings: [String]
    private let otherParts: [[TensorRole]]
    private let linear: [String: LinearModule]

    public var baseDescription: String { base.description }
    public var tunedDescription: String { tuned.description }

    public init(base: any ModelWeightReader, tuned: any ModelWeightReader) throws {
        guard base.layout.entries.map(\.shape) == tuned.layout.entries.map(\.shape),
              base.layout.entries.map(\.name) == tuned.layout.entries.map(\.name) else {
            let (a, b) = (base.config, tuned.config)
            throw AnalysisError(file: tuned.description, "the two models do not match: \(HFFolderDeltaSource.differences(a, b).joined(separator: ", "))")
        }
        self.base = base
        self.tuned = tuned
        let config = base.config
        modules = DeltaModule.modules(of: config)
        let targets = Set(modules.map(\.name))
        let others = HFNaming(config: config).tensors.filter { !targets.contains($0.name) }
        otherTensors = others.map { DeltaTensorInfo(name: $0.name, shape: $0.shape) }
        otherParts = others.map(\.parts)
        linear = Dictionary(uniqueKeysWithValues: HFNaming(config: config).linearModules.map { ($0.path, $0) })
        var warnings: [String] = []
        if base.config != tuned.config {
            warnings.append("config differs (\(HFFolderDeltaSource.differences(base.config, tuned.config).joined(separator: ", "))) though every tensor shape matches")
        }
        for side in [base, tuned] {
            if let c = side as? CheckpointWeights, c.hasAdapter {
                warnings.append("\(c.folder) is a LoRA run's checkpoint: its base weights are analysed, without the adapter")
            }
        }
        self.warnings = warnings
    }

    /// Opens `path` as an HF folder (it has config.json) or a Subspace checkpoint or run folder.
    public static func reader(_ path: String) throws -> any ModelWeightReader {
        if FileManager.default.fileExists(atPath: (path as NSString).appendingPathComponent("config.json")) {
            return try HFModelReader(folder: path)
        }
        return try CheckpointWeights(path: path)
    }

    /// Whether `path` is an HF model folder (else a checkpoint or run folder is assumed).
    public static func isHFFolder(_ path: String) -> Bool {
        FileManager.default.fileExists(atPath: (path as NSString).appendingPathComponent("config.json"))
    }

    /// The module's parts stacked along the output dimension, [out, in].
    func matrix(_ side: any ModelWeightReader, _ module: DeltaModule) throws -> Tensor {
        let l = linear[module.path]!
        let parts = try l.parts.map { try side.tensor(.layer(l.layer, $0)) }
        return Tensor(shape: module.shape, values: parts.flatMap(\.scalars))
    }

    public func loadRound(owners: [Int?], communicator: any Communicator) throws -> DeltaPair? {
        guard let index = owners[communicator.rank] else { return nil }
        return DeltaPair(base: try matrix(base, modules[index]), tuned: try matrix(tuned, modules[index]))
    }

    /// Streamed in chunks, so even the embeddings are never read whole.
    public func otherTensorNorms(communicator: any Communicator) throws -> [SquaredNorms] {
        try distributedOtherTensorNorms(communicator: communicator) { i in
            var norms = SquaredNorms(delta: 0, base: 0)
            let chunk = 1 << 16
            var b = [Float](repeating: 0, count: chunk), t = [Float](repeating: 0, count: chunk)
            for role in otherParts[i] {
                let range = base.layout[role].range
                var start = range.lowerBound
                while start < range.upperBound {
                    let piece = start..<min(start + chunk, range.upperBound)
                    try b.withUnsafeMutableBufferPointer { try base.read(piece, into: $0.baseAddress!) }
                    try t.withUnsafeMutableBufferPointer { try tuned.read(piece, into: $0.baseAddress!) }
                    for k in 0..<piece.count {
                        let x = Double(b[k]), d = Double(t[k]) - x
                        norms.base += x * x
                        norms.delta += d * d
                    }
                    start = piece.upperBound
                }
            }
            return norms
        }
    }
}

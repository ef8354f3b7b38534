import Foundation
import SubspaceCore
import SubspaceModel

/// The parameters of a Subspace training checkpoint (`…/checkpoints/step-N`), read in pieces straight
/// from its per-rank files, whatever world size and ZeRO stage wrote them: nothing is gathered and no
/// HF folder is written. Opening reads the manifest (checked as a resume would check it) and the files'
/// headers; a file's size and SHA-256 are checked against the manifest the first time a read touches
/// it, so a reader that needs one module hashes only the files holding its pieces.
///
/// A checkpoint of a LoRA run holds the base weights it trained on (the adapter is not merged).
public final class CheckpointWeights: ModelWeightReader, @unchecked Sendable {
    public let folder: String
    public let config: ModelConfig
    public let layout: ParameterLayout
    public let step: Int
    /// Whether the run trained a LoRA adapter (the weights here are then its base).
    public let hasAdapter: Bool
    public var description: String { folder }

    struct Piece { let start: Int; let count: Int; let file: Int; let key: String }
    let files: [SafetensorsFile]
    let expected: [(bytes: Int, sha256: String)]
    var verified: Set<Int> = []
    let lock = NSLock()
    /// Per tensor name, its parameter pieces.
    let pieces: [String: [Piece]]

    /// `path`: a checkpoint folder (with `manifest.json`), or a run folder (its newest checkpoint).
    public convenience init(path: String) throws {
        try self.init(checkpoint: try Self.resolve(path))
    }

    /// The checkpoint `path` names: itself when it holds a manifest, else a run folder's newest one.
    public static func resolve(_ path: String) throws -> String {
        let fm = FileManager.default
        if fm.fileExists(atPath: (path as NSString).appendingPathComponent(CheckpointStore.manifestName)) { return path }
        let store = CheckpointStore(folder: (path as NSString).appendingPathComponent("checkpoints"))
        guard let newest = store.completed().last else {
            throw TrainingError.checkpoint("\(path): neither a checkpoint folder (no \(CheckpointStore.manifestName)) nor a run folder with a completed checkpoint under checkpoints/")
        }
        return newest.path
    }

    public init(checkpoint: String) throws {
        folder = checkpoint
        func fail(_ message: String) -> TrainingError { .checkpoint("\(checkpoint): \(message)") }
        let manifestPath = (checkpoint as NSString).appendingPathComponent(CheckpointStore.manifestName)
        guard let data = FileManager.default.contents(atPath: manifestPath),
              let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let model = json["model"] as? [String: Any] else {
            throw fail("\(CheckpointStore.manifestName) is missing, not JSON, or records no model")
        }
        config = try ModelConfig(hfConfig: model, file: manifestPath)
        layout = ParameterLayout(config: config)
        let manifest = try CheckpointStore.inspect(checkpoint, model: Transformer(config: config))  // no weights allocated
        step = manifest.step
        hasAdapter = json["lora"] != nil
        var files: [SafetensorsFile] = [], expected: [(Int, String)] = [], pieces: [String: [Piece]] = [:]
        for (i, name) in (0..<manifest.worldSize).map({ String(format: "rank-%05d-of-%05d.safetensors", $0, manifest.worldSize) }).enumerated() {
            guard let entry = manifest.files.first(where: { $0["name"] as? String == name }),
                  let bytes = entry["bytes"] as? Int, let sha = entry["sha256"] as? String else {
                throw fail("\(CheckpointStore.manifestName) has a malformed entry for \(name)")
            }
            let path = (checkpoint as NSString).appendingPathComponent(name)
            guard FileManager.default.fileExists(atPath: path) else { throw TrainingError.checkpoint("\(path): missing") }
            let file = try SafetensorsFile(path: path)
            for key in file.names where key.hasPrefix("param::") {
                let parts = key.components(separatedBy: "::")
                guard parts.count == 3, let start = Int(parts[2]), start >= 0 else { throw TrainingError.checkpoint("\(path): unexpected tensor '\(key)'") }
                let info = try file.info(key)
                guard info.dtype == .f32 else { throw TrainingError.checkpoint("\(path): '\(key)' is \(info.dtype.rawValue), not f32") }
                pieces[parts[1], default: []].append(Piece(start: start, count: info.count, file: i, key: key))
            }
            files.append(file)
            expected.append((bytes, sha))
        }
        self.files = files
        self.expected = expected
        self.pieces = pieces
    }

    /// Checks file `i` against the manifest once.
    func verify(_ i: Int) throws {
        lock.lock()
        defer { lock.unlock() }
        guard !verified.contains(i) else { return }
        let mapped = try MappedFile(path: files[i].path)
        guard mapped.count == expected[i].bytes else {
            throw TrainingError.checkpoint("\(files[i].path): \(mapped.count) bytes, the manifest says \(expected[i].bytes) (truncated or replaced)")
        }
        guard SHA256.hex(mapped.bytes) == expected[i].sha256 else {
            throw TrainingError.checkpoint("\(files[i].path): checksum does not match the manifest (corrupted)")
        }
        verified.insert(i)
    }

    public func read(_ range: Range<Int>, into destination: UnsafeMutablePointer<Float>) throws {
        destination.update(repeating: 0, count: range.count)
        for e in layout.entries {
            let piece = e.range.clamped(to: range)
            if piece.isEmpty { continue }
            let wanted = (piece.lowerBound - e.offset)..<(piece.upperBound - e.offset)
            var covered = 0
            for p in pieces[e.name] ?? [] {
                let overlap = (p.start..<(p.start + p.count)).clamped(to: wanted)
                if overlap.isEmpty { continue }
                try verify(p.file)
                try files[p.file].withRawBytes(p.key) { _, bytes in
                    UnsafeMutableRawPointer(destination + (e.offset + overlap.lowerBound - range.lowerBound))
                        .copyMemory(from: bytes.baseAddress! + 4 * (overlap.lowerBound - p.start), byteCount: 4 * overlap.count)
                }
                covered += overlap.count
            }
            guard covered == wanted.count else {
                throw TrainingError.checkpoint("\(folder): elements \(wanted) of tensor '\(e.name)' are not all in the checkpoint")
            }
        }
    }
}

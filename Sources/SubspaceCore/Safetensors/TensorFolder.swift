import Foundation

/// The tensors of a model folder as HF writes them: one `model.safetensors`, or shards listed by
/// `model.safetensors.index.json` (`{"metadata": {...}, "weight_map": {tensor: shard file}}`).
/// Shards are memory-mapped on open; a tensor is converted to float32 only when asked for.
public final class TensorFolder: @unchecked Sendable {
    public static let indexName = "model.safetensors.index.json"
    public static let singleName = "model.safetensors"

    public let folder: String
    /// Every tensor name, sorted.
    public let names: [String]
    private let files: [String: SafetensorsFile]  // shard file name → file
    private let location: [String: String]        // tensor → shard file name

    /// Opens `folder/model.safetensors.index.json` if present, else `folder/model.safetensors`
    /// (or `folder/<file>` when `file` is given).
    public init(folder: String, file: String? = nil) throws {
        self.folder = folder
        let indexPath = (folder as NSString).appendingPathComponent(file ?? TensorFolder.indexName)
        if file == nil && !FileManager.default.fileExists(atPath: indexPath) || file?.hasSuffix(".safetensors") == true {
            let name = file ?? TensorFolder.singleName
            let path = (folder as NSString).appendingPathComponent(name)
            guard FileManager.default.fileExists(atPath: path) else {
                throw SafetensorsError(file: folder, .io, "no \(TensorFolder.indexName) or \(TensorFolder.singleName) in the folder")
            }
            let single = try SafetensorsFile(path: path)
            files = [name: single]
            location = Dictionary(uniqueKeysWithValues: single.names.map { ($0, name) })
            names = single.names.sorted()
            return
        }

        let weightMap = try TensorFolder.readIndex(indexPath)
        var opened: [String: SafetensorsFile] = [:]
        for shard in Set(weightMap.values).sorted() {
            opened[shard] = try SafetensorsFile(path: (folder as NSString).appendingPathComponent(shard))
        }
        for (tensor, shard) in weightMap where !opened[shard]!.contains(tensor) {
            throw SafetensorsError(file: indexPath, tensor: tensor, .index, "listed in shard '\(shard)', which does not hold it")
        }
        files = opened
        location = weightMap
        names = weightMap.keys.sorted()
    }

    private static func readIndex(_ path: String) throws -> [String: String] {
        struct Index: Decodable { let weight_map: [String: String] }
        let index: Index
        do {
            let data = try Data(contentsOf: URL(fileURLWithPath: path))
            index = try JSONDecoder().decode(Index.self, from: data)
        } catch let error as DecodingError {
            throw SafetensorsError(file: path, .index, "not a valid index: \(SafetensorsFile.describe(error))")
        } catch {
            throw SafetensorsError(file: path, .io, "cannot read: \(FileSystemMessage.reason(error))")
        }
        for (tensor, shard) in index.weight_map {
            // Shards must be plain file names inside the folder.
            guard !shard.isEmpty, !shard.contains("/"), shard != ".", shard != ".." else {
                throw SafetensorsError(file: path, tensor: tensor, .index, "shard name '\(shard)' is not a file name in the folder")
            }
        }
        return index.weight_map
    }

    public func contains(_ name: String) -> Bool { location[name] != nil }

    /// The file that holds `name`.
    public func file(for name: String) throws -> SafetensorsFile {
        guard let shard = location[name], let file = files[shard] else {
            throw SafetensorsError(file: folder, tensor: name, .missingTensor, "no such tensor in the checkpoint")
        }
        return file
    }

    public func info(_ name: String) throws -> TensorInfo { try file(for: name).info(name) }

    public func tensor(_ name: String) throws -> Tensor { try file(for: name).tensor(name) }

    public func integers(_ name: String) throws -> (shape: [Int], values: [Int64]) {
        try file(for: name).integers(name)
    }

    /// Metadata of the single file, or of the first shard.
    public var metadata: [String: String] { files.sorted { $0.key < $1.key }.first?.value.metadata ?? [:] }

    /// Writes `tensors` (in order) into `folder` as one `model.safetensors`, or, when they exceed
    /// `maxShardBytes`, as `model-0000i-of-0000n.safetensors` shards plus the index. Each file is written
    /// atomically and the index last, so readers never see an index naming a missing shard.
    public static func write(
        _ tensors: [(name: String, tensor: Tensor)], to folder: String, dtype: DType = .f32,
        metadata: [String: String] = ["format": "pt"], maxShardBytes: Int = 5 << 30
    ) throws {
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        } catch {
            throw SafetensorsError(file: folder, .io, "cannot create folder: \(FileSystemMessage.reason(error))")
        }
        var shards: [SafetensorsWriter] = [SafetensorsWriter(metadata: metadata)]
        for (name, tensor) in tensors {
            let bytes = tensor.count * dtype.byteSize
            if !shards[shards.count - 1].isEmpty && shards[shards.count - 1].dataByteCount + bytes > maxShardBytes {
                shards.append(SafetensorsWriter(metadata: metadata))
            }
            shards[shards.count - 1].add(name, tensor, as: dtype)
        }
        let path = { (name: String) in (folder as NSString).appendingPathComponent(name) }
        if shards.count == 1 {
            try shards[0].write(to: path(singleName))
            try? FileManager.default.removeItem(atPath: path(indexName))  // a stale index would shadow the new file
            return
        }
        var weightMap: [String: String] = [:]
        var total = 0
        for (i, shard) in shards.enumerated() {
            let name = String(format: "model-%05d-of-%05d.safetensors", i + 1, shards.count)
            try shard.write(to: path(name))
            for item in shard.items { weightMap[item.name] = name }
            total += shard.dataByteCount
        }
        let index: [String: Any] = ["metadata": ["total_size": total], "weight_map": weightMap]
        let json: Data
        do {
            json = try JSONSerialization.data(withJSONObject: index, options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes])
        } catch {
            throw SafetensorsError(file: path(indexName), .index, "cannot encode index: \(error)")
        }
        try AtomicFile.write([UInt8](json), to: path(indexName))
        try? FileManager.default.removeItem(atPath: path(singleName))
    }
}

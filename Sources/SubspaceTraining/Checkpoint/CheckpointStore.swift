import Foundation
import SubspaceCore
import SubspaceDistributed
import SubspaceModel

/// Training checkpoints in a logical, per-tensor layout, written shard by shard.
///
/// A checkpoint is a folder `step-NNNNNNNN/` holding one safetensors file per rank and a
/// `manifest.json`. Rank r writes the pieces of every tensor that fall in its part of each block (as
/// ZeRO shards it): `param::<tensor>::<first element>` and, for trainable tensors, `m::…` and `v::…`
/// (AdamW moments), all 1-D. No rank ever gathers the whole model. The manifest records the step, the
/// optimizer's step count, the model and LoRA configuration, every tensor's shape, and each file's size
/// and SHA-256. Because pieces are addressed by tensor and element, a checkpoint loads into any world
/// size and ZeRO stage: each rank reads the pieces that intersect what it now holds.
///
/// Writing goes to `step-NNNNNNNN.tmp/` and is renamed into place after every file and the manifest are
/// on disk, so a crash mid-write never damages an earlier checkpoint; older ones beyond `keep` are then
/// removed. The sample order is a pure function of the step, so the step is the whole data position.
public struct CheckpointStore {
    public let folder: String
    public static let manifestName = "manifest.json"
    public static let format = "subspace-checkpoint-1"

    public init(folder: String) { self.folder = folder }

    func path(_ name: String) -> String { (folder as NSString).appendingPathComponent(name) }
    static func stepName(_ step: Int) -> String { String(format: "step-%08d", step) }

    /// Completed checkpoints (those with a manifest), oldest first.
    public func completed() -> [(step: Int, path: String)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        return names.compactMap { name -> (Int, String)? in
            guard name.hasPrefix("step-"), !name.hasSuffix(".tmp"), let step = Int(name.dropFirst(5)) else { return nil }
            let p = path(name)
            return FileManager.default.fileExists(atPath: (p as NSString).appendingPathComponent(Self.manifestName)) ? (step, p) : nil
        }.sorted { $0.0 < $1.0 }
    }

    // MARK: Save

    /// Collective: every rank writes its pieces; rank 0 writes the manifest and renames the folder.
    public func save(engine: ZeroEngine, step: Int, keep: Int, extra: [String: String] = [:]) throws {
        let comm = engine.communicator
        let final = path(Self.stepName(step))
        let temporary = final + ".tmp"
        if comm.rank == 0 {
            try? FileManager.default.removeItem(atPath: temporary)
            try FileManager.default.createDirectory(atPath: temporary, withIntermediateDirectories: true)
        }
        try comm.barrier()
        let fileName = String(format: "rank-%05d-of-%05d.safetensors", comm.rank, comm.size)
        let filePath = (temporary as NSString).appendingPathComponent(fileName)
        var localError: String? = nil
        do {
            try pieces(engine).write(to: filePath)
        } catch {
            localError = "rank \(comm.rank) cannot write \(filePath): \(error)"
        }
        // Every rank reports its file (or its failure) to all, so all agree on the outcome.
        var report: String
        if let localError {
            report = "ERROR " + localError
        } else {
            do { report = try Self.describe(file: filePath, name: fileName) } catch { report = "ERROR rank \(comm.rank): \(error)" }
        }
        let reports = try comm.allGatherArrays(Array(report.utf8)).map { String(decoding: $0, as: UTF8.self) }
        if let failed = reports.first(where: { $0.hasPrefix("ERROR ") }) {
            throw TrainingError.checkpoint(String(failed.dropFirst(6)))
        }
        if comm.rank == 0 {
            var manifest = manifestBase(engine: engine, step: step)
            manifest["files"] = try reports.map { try JSONSerialization.jsonObject(with: Data($0.utf8)) }
            manifest["extra"] = extra
            let data = try JSONSerialization.data(withJSONObject: manifest, options: [.prettyPrinted, .sortedKeys])
            try AtomicFile.write([UInt8](data), to: (temporary as NSString).appendingPathComponent(Self.manifestName))
            try? FileManager.default.removeItem(atPath: final)
            try FileManager.default.moveItem(atPath: temporary, toPath: final)
            try AtomicFile.syncDirectory(containing: final)
            for old in completed().dropLast(max(keep, 1)) { try? FileManager.default.removeItem(atPath: old.path) }
        }
        try comm.barrier()
    }

    static func describe(file: String, name: String) throws -> String {
        let mapped = try MappedFile(path: file)
        let object: [String: Any] = ["name": name, "bytes": mapped.count, "sha256": SHA256.hex(mapped.bytes)]
        return String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
    }

    func manifestBase(engine: ZeroEngine, step: Int) -> [String: Any] {
        let model = engine.model
        var tensors: [String: Any] = [:]
        for e in model.layout.entries { tensors[e.name] = ["shape": e.shape, "trainable": !model.frozen.contains(e.role)] }
        var manifest: [String: Any] = [
            "format": Self.format, "step": step, "optimizer_step": engine.adam.step,
            "world_size": engine.communicator.size, "zero_stage": engine.stage,
            "model": model.config.hfConfig, "tensors": tensors,
            // The block partition the ranks' parts follow (a reader finds the writer's parts from it).
            "blocks": model.layout.blockRanges.map(\.count),
        ]
        if let a = model.adapters {
            manifest["lora"] = ["r": a.config.rank, "alpha": Double(a.config.alpha), "modules": a.adapters.map(\.module.path)]
        }
        return manifest
    }

    /// This rank's pieces: its owned part of every tensor (parameters, and moments where it keeps them).
    func pieces(_ engine: ZeroEngine) -> SafetensorsWriter {
        var writer = SafetensorsWriter(metadata: ["format": Self.format])
        let model = engine.model, r = engine.rank
        for (b, s) in engine.shards.enumerated() {
            let own = s.owned[r]
            // Moments are packed over the elements this rank updates; map each to its offset.
            var momentOffset: [Int: Int] = [:]  // global start of an update segment → packed index
            var packed = 0
            for seg in engine.updateSegments(b) { momentOffset[seg.range.lowerBound] = packed; packed += seg.range.count }
            for e in model.layout.entries(inBlock: b) {
                let piece = e.range.clamped(to: own)
                if piece.isEmpty { continue }
                let start = piece.lowerBound - e.offset
                writer.add("param::\(e.name)::\(start)", Tensor(shape: [piece.count]) { out in
                    out.baseAddress!.update(from: engine.parameterPointer(b, piece.lowerBound), count: piece.count)
                })
                if !model.frozen.contains(e.role), let moments = momentIndex(engine, b, piece, momentOffset) {
                    writer.add("m::\(e.name)::\(start)", Tensor(shape: [piece.count]) { $0.baseAddress!.update(from: engine.m[b].pointer + moments, count: piece.count) })
                    writer.add("v::\(e.name)::\(start)", Tensor(shape: [piece.count]) { $0.baseAddress!.update(from: engine.v[b].pointer + moments, count: piece.count) })
                }
            }
        }
        if r == 0, let a = model.adapters {
            writer.add("adapter::all::0", Tensor(shape: [a.totalCount]) { $0.baseAddress!.update(from: a.storage.pointer, count: a.totalCount) })
            if let am = engine.adapterM, let av = engine.adapterV {
                writer.add("adapter_m::all::0", Tensor(shape: [a.totalCount]) { $0.baseAddress!.update(from: am.pointer, count: a.totalCount) })
                writer.add("adapter_v::all::0", Tensor(shape: [a.totalCount]) { $0.baseAddress!.update(from: av.pointer, count: a.totalCount) })
            }
        }
        return writer
    }

    /// Packed moment index of `piece` (a trainable tensor's slice inside one update segment).
    func momentIndex(_ engine: ZeroEngine, _ b: Int, _ piece: Range<Int>, _ offsets: [Int: Int]) -> Int? {
        for seg in engine.updateSegments(b) where seg.range.contains(piece.lowerBound) {
            return offsets[seg.range.lowerBound]! + (piece.lowerBound - seg.range.lowerBound)
        }
        return nil
    }
}

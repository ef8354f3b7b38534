import Foundation
import SubspaceCore
import SubspaceDistributed
import SubspaceModel

extension CheckpointStore {
    /// What a loaded checkpoint says about where training stands.
    public struct Restored: Sendable {
        public let step: Int
        public let extra: [String: String]
        /// Rank files this rank opened and checked, of those the writer left.
        public var filesRead = 0, filesWritten = 0
    }

    /// Loads `checkpoint` (a `step-…` folder) into the engine's model, moments and optimizer step, for
    /// whatever world size and stage the engine has. Every file is checked against the manifest's size
    /// and SHA-256 first; a mismatch names the file. Every rank checks the same files, so all agree.
    /// What a checkpoint's manifest says, checked: the format, `step` and `optimizer_step` ≥ 0,
    /// `world_size` ≥ 1 with one rank file per rank, `zero_stage` in 0...3, the model's integer settings
    /// and every tensor's shape against `model`. Reads only the manifest, so it is cheap enough to run
    /// before anything is written.
    public struct Manifest {
        public let step: Int
        public let optimizerStep: Int
        public let worldSize: Int
        public let zeroStage: Int
        public let lineage: RunLineage?
        /// The blocks (global ranges of the flat layout) the writer's ranks split: the manifest's
        /// `blocks`, or for a checkpoint written before vocabulary slices the partition of that time
        /// (embeddings, each layer, the tail).
        public let blocks: [Range<Int>]
        let tensors: [String: Any]
        let files: [[String: Any]]
        let extra: [String: String]
    }

    public static func inspect(_ checkpoint: String, model: Transformer) throws -> Manifest {
        func fail(_ message: String) -> TrainingError { .checkpoint("\(checkpoint): \(message)") }
        let manifestPath = (checkpoint as NSString).appendingPathComponent(manifestName)
        guard let data = FileManager.default.contents(atPath: manifestPath),
              let manifest = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw fail("\(manifestName) is missing or not JSON")
        }
        guard manifest["format"] as? String == format else { throw fail("not a \(format) checkpoint") }
        guard let step = manifest["step"] as? Int, let optimizerStep = manifest["optimizer_step"] as? Int,
              let tensors = manifest["tensors"] as? [String: Any], let files = manifest["files"] as? [[String: Any]] else {
            throw fail("\(manifestName) lacks step, optimizer_step, tensors or files")
        }
        guard step >= 0 else { throw fail("\(manifestName) has step \(step); a step is ≥ 0") }
        guard optimizerStep >= 0 else { throw fail("\(manifestName) has optimizer_step \(optimizerStep); it is ≥ 0") }
        guard let worldSize = manifest["world_size"] as? Int, worldSize >= 1 else {
            throw fail("\(manifestName) has world_size \(manifest["world_size"].map { "\($0)" } ?? "missing"); it is an integer ≥ 1")
        }
        guard let stage = manifest["zero_stage"] as? Int, (0...3).contains(stage) else {
            throw fail("\(manifestName) has zero_stage \(manifest["zero_stage"].map { "\($0)" } ?? "missing"); it is 0, 1, 2 or 3")
        }
        let expectedNames = (0..<worldSize).map { String(format: "rank-%05d-of-%05d.safetensors", $0, worldSize) }
        let names = files.compactMap { $0["name"] as? String }
        guard names.sorted() == expectedNames else {
            throw fail("\(manifestName) lists files \(names.sorted()), but world_size \(worldSize) means \(expectedNames.first!) … \(expectedNames.last!)")
        }
        if let recorded = manifest["model"] as? [String: Any] {
            // The shape's main keys first, so a changed width is reported as the width.
            let first = ["n_embd", "hidden_size", "n_layer", "num_hidden_layers", "n_head", "num_attention_heads", "vocab_size"]
            let ordered = model.config.hfConfig.sorted { a, b in
                (first.firstIndex(of: a.key) ?? first.count, a.key) < (first.firstIndex(of: b.key) ?? first.count, b.key)
            }
            for (key, value) in ordered {
                guard let mine = value as? Int, let theirs = recorded[key] as? Int, mine != theirs else { continue }
                throw fail("was written for a model with \(key) \(theirs); this model has \(mine)")
            }
        }
        for e in model.layout.entries {
            guard let t = tensors[e.name] as? [String: Any], let shape = t["shape"] as? [Int] else {
                throw fail("has no tensor '\(e.name)' (was it written for another model?)")
            }
            guard shape == e.shape else { throw fail("tensor '\(e.name)' has shape \(shape), the model needs \(e.shape)") }
        }
        if tensors.count != model.layout.entries.count { throw fail("holds \(tensors.count) tensors, the model has \(model.layout.entries.count)") }
        let layout = model.layout
        var blocks: [Range<Int>] = []
        if let counts = manifest["blocks"] as? [Int] {
            var cursor = 0
            for n in counts {
                guard n >= 0 else { throw fail("\(manifestName) has a block of \(n) elements") }
                blocks.append(cursor..<(cursor + n))
                cursor += n
            }
            guard cursor == layout.totalCount else {
                throw fail("\(manifestName)'s blocks cover \(cursor) elements, this model's layout \(layout.totalCount) (another layout version?)")
            }
        } else {
            blocks = [layout.embeddingRange] + layout.layerRanges + [layout.tailRange]
        }
        let extra = manifest["extra"] as? [String: String] ?? [:]
        return Manifest(step: step, optimizerStep: optimizerStep, worldSize: worldSize, zeroStage: stage,
                        lineage: extra["lineage"].flatMap(RunLineage.init(json:)), blocks: blocks, tensors: tensors, files: files, extra: extra)
    }

    /// The lineage a checkpoint's manifest records, if it records one (read before anything is checked).
    public static func recordedLineage(_ checkpoint: String) -> RunLineage? {
        let manifestPath = (checkpoint as NSString).appendingPathComponent(manifestName)
        guard let data = FileManager.default.contents(atPath: manifestPath),
              let manifest = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let text = (manifest["extra"] as? [String: Any])?["lineage"] as? String else { return nil }
        return RunLineage(json: text)
    }

    /// Loads `checkpoint` (a `step-…` folder) into the engine's model, moments and optimizer step, for
    /// whatever world size and stage wrote it and the engine has. Each rank reads only its own part of
    /// every block (parameters and the moments it updates): it opens, checks against the manifest's size
    /// and SHA-256, and indexes only the rank files whose pieces overlap that part (the writer's shards
    /// follow from its world size), plus rank 0's for LoRA adapters. Stages 0–2, which hold more than
    /// their part, then all-gather the rest (parameters; stage 0 also moments). A mismatch names the
    /// file, and all ranks agree on the outcome before any collective.
    public static func load(_ checkpoint: String, into engine: ZeroEngine) throws -> Restored {
        func fail(_ message: String) -> TrainingError { .checkpoint("\(checkpoint): \(message)") }
        let model = engine.model
        let inspected = try inspect(checkpoint, model: model)
        let (step, optimizerStep, tensors, files) = (inspected.step, inspected.optimizerStep, inspected.tensors, inspected.files)
        let r = engine.rank

        // The writer's parts of each of its blocks (BlockShard's balanced split for its world size; its
        // blocks as the manifest records them, which need not be this layout's).
        let writers = inspected.worldSize
        let mine = engine.shards.map { $0.owned[r] }.filter { !$0.isEmpty }
        let neededFiles = (0..<writers).filter { w in
            (w == 0 && model.adapters != nil) || inspected.blocks.contains { block in
                let local = ShardPlan(total: block.count, parts: writers).range(of: w)
                let theirs = (block.lowerBound + local.lowerBound)..<(block.lowerBound + local.upperBound)
                return mine.contains { !theirs.clamped(to: $0).isEmpty }
            }
        }
        let neededNames = Set(neededFiles.map { String(format: "rank-%05d-of-%05d.safetensors", $0, writers) })
        var localFailure = ""
        var pieces: [String: [(start: Int, count: Int, file: SafetensorsFile, key: String)]] = [:]
        /// This rank's part of every block: parameters and the moments it updates, and the adapters.
        func fillOwnPart() throws {
            /// Copies elements `wanted` (tensor-local) of kind::tensor into `destination`.
            func fill(_ kind: String, _ tensor: String, _ wanted: Range<Int>, into destination: UnsafeMutablePointer<Float>) throws {
                var covered = 0
                for p in pieces["\(kind)::\(tensor)"] ?? [] {
                    let overlap = (p.start..<(p.start + p.count)).clamped(to: wanted)
                    if overlap.isEmpty { continue }
                    let values = try p.file.tensor(p.key)
                    values.withUnsafeBufferPointer { src in
                        (destination + (overlap.lowerBound - wanted.lowerBound)).update(from: src.baseAddress! + (overlap.lowerBound - p.start), count: overlap.count)
                    }
                    covered += overlap.count
                }
                guard covered == wanted.count else {
                    throw fail("elements \(wanted) of \(kind == "param" ? "tensor" : "the moments of") '\(tensor)' are not all in the checkpoint")
                }
            }

            let r = engine.rank
            for (b, s) in engine.shards.enumerated() {
                var packed = 0
                let segments = engine.updateSegments(b)
                for e in model.layout.entries(inBlock: b) {
                    let needed = e.range.clamped(to: s.owned[r])
                    if !needed.isEmpty {
                        try fill("param", e.name, (needed.lowerBound - e.offset)..<(needed.upperBound - e.offset),
                                 into: engine.parameterPointer(b, needed.lowerBound))
                    }
                }
                for seg in segments {
                    // An update segment lies inside one tensor.
                    guard let e = model.layout.entries(inBlock: b).first(where: { $0.range.contains(seg.range.lowerBound) }) else { continue }
                    guard (tensors[e.name] as? [String: Any])?["trainable"] as? Bool == true else {
                        throw fail("tensor '\(e.name)' was frozen when this checkpoint was written and has no optimizer state")
                    }
                    // Stage 0 updates every segment; only this rank's part is read (the rest is gathered).
                    let part = seg.range.clamped(to: s.owned[r])
                    if !part.isEmpty {
                        let local = (part.lowerBound - e.offset)..<(part.upperBound - e.offset)
                        let at = packed + (part.lowerBound - seg.range.lowerBound)
                        try fill("m", e.name, local, into: engine.m[b].pointer + at)
                        try fill("v", e.name, local, into: engine.v[b].pointer + at)
                    }
                    packed += seg.range.count
                }
            }
            if let a = model.adapters {
                guard pieces["adapter::all"] != nil else { throw fail("has no LoRA adapter, but this run trains one") }
                try fill("adapter", "all", 0..<a.totalCount, into: a.storage.pointer)
                if let am = engine.adapterM, let av = engine.adapterV {
                    try fill("adapter_m", "all", 0..<a.totalCount, into: am.pointer)
                    try fill("adapter_v", "all", 0..<a.totalCount, into: av.pointer)
                }
            }
        }
        do {
            // Check the files this rank needs, then index their pieces.
            for f in files {
                guard let name = f["name"] as? String, let bytes = f["bytes"] as? Int, let sha = f["sha256"] as? String,
                      !name.contains("/") else { throw fail("\(manifestName) has a malformed file entry") }
                guard neededNames.contains(name) else { continue }
                let path = (checkpoint as NSString).appendingPathComponent(name)
                guard FileManager.default.fileExists(atPath: path) else { throw TrainingError.checkpoint("\(path): missing") }
                let mapped = try MappedFile(path: path)
                guard mapped.count == bytes else {
                    throw TrainingError.checkpoint("\(path): \(mapped.count) bytes, the manifest says \(bytes) (truncated or replaced)")
                }
                guard SHA256.hex(mapped.bytes) == sha else {
                    throw TrainingError.checkpoint("\(path): checksum does not match the manifest (corrupted)")
                }
                let file = try SafetensorsFile(path: path)
                for key in file.names {
                    let parts = key.components(separatedBy: "::")
                    guard parts.count == 3, let start = Int(parts[2]), (0..<(1 << 48)).contains(start) else { throw TrainingError.checkpoint("\(path): unexpected tensor '\(key)'") }
                    let count = try file.info(key).count
                    pieces["\(parts[0])::\(parts[1])", default: []].append((start, count, file, key))
                }
            }
            try fillOwnPart()
        } catch {
            localFailure = "\(error)"
        }
        try engine.agree(localFailure) { message in TrainingError.checkpoint(message) }
        engine.spreadOwnParts()
        engine.adam.restore(step: optimizerStep)
        return Restored(step: step, extra: inspected.extra, filesRead: neededNames.count, filesWritten: writers)
    }
}

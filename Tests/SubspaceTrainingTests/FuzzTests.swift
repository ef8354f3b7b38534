import Foundation
import Testing
import SubspaceTestSupport
import SubspaceCore
import SubspaceDistributed
import SubspaceModel
@testable import SubspaceTraining

/// Fuzzing as a habit (issue 13): over a thousand corrupted copies of every kind of file a user hands
/// Subspace — HF model folders (config.json and weights), PEFT adapter folders, checkpoints (manifest and
/// pieces), tokenizer files and YAML run configs. Each must be refused with a typed error or read back
/// correctly; none may crash, hang or allocate what the file only claims (config.json `n_layer: 1e9`
/// over three layers of weights is refused before any allocation). Deterministic (seeded) and a few
/// seconds long; the slowest single trial is reported.
@Suite struct FuzzTests {
    static func fixtures() -> String {
        if let env = ProcessInfo.processInfo.environment["SUBSPACE_FIXTURES"] { return env }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("shared/fixtures").path
    }

    /// Values a mutated JSON or YAML field takes: absurd sizes, signs, types.
    static var absurd: [Any] { [0, -1, 1, 2, 3, 7, 1_000_000_000, 1e18, 1e30, -1e9, 2.5, Double.nan, "x", "", NSNull(), true, [Any](), [String: Any]()] }
    static let absurdYAML = ["0", "-1", "1", "3", "1000000000", "1e18", "1e30", "-1e9", "2.5", ".nan", ".inf", "x", "''", "null", "true",
                             "[]", "{}", "[1, [2]]", "{a: 1}", "\"\\u0000\"", "&a 1", "*b", "!!binary AAAA", "0x7fffffffffffffff"]

    /// Tallies outcomes and the slowest trial; a trial that throws something untyped is recorded.
    final class Tally {
        var refused = 0, read = 0, slowest = 0.0, slowestWhat = ""
        var total: Int { refused + read }
        struct Summary: Sendable { let refused: Int, read: Int, slowest: Double, slowestWhat: String }
        var summary: Summary { Summary(refused: refused, read: read, slowest: slowest, slowestWhat: slowestWhat) }
        func merge(_ other: Summary) {
            refused += other.refused
            read += other.read
            if other.slowest > slowest { (slowest, slowestWhat) = (other.slowest, other.slowestWhat) }
        }
        func trial(_ what: String, _ body: () throws -> Void) {
            let start = DispatchTime.now().uptimeNanoseconds
            do { try body(); read += 1 } catch { refused += 1 }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9
            if seconds > slowest { (slowest, slowestWhat) = (seconds, what) }
        }
    }

    /// `bytes` with one random corruption: truncation, byte flips, or a digit replaced by another.
    static func corruptBytes(_ bytes: [UInt8], _ rng: inout RandomStream) -> [UInt8] {
        var out = bytes
        guard !out.isEmpty else { return out }
        switch rng.nextInt(below: 4) {
        case 0: out.removeLast(1 + rng.nextInt(below: out.count))
        case 1: for _ in 0..<(1 + rng.nextInt(below: 6)) { out[rng.nextInt(below: out.count)] = UInt8(truncatingIfNeeded: rng.nextWord()) }
        case 2:
            let digits = out.indices.filter { (48...57).contains(out[$0]) }
            if let at = digits.isEmpty ? nil : digits[rng.nextInt(below: digits.count)] { out[at] = UInt8(48 + rng.nextInt(below: 10)) }
        default: out.insert(contentsOf: Array("9999999999".utf8), at: rng.nextInt(below: out.count))
        }
        return out
    }

    /// A JSON object with one field set to an absurd value or removed (nested one level for lists of objects).
    static func corruptJSON(_ object: [String: Any], keys preferred: [String], _ rng: inout RandomStream) -> [String: Any] {
        var out = object
        let keys = rng.nextInt(below: 3) > 0 ? preferred.filter { out[$0] != nil } : Array(out.keys).sorted()
        guard !keys.isEmpty else { return out }
        let key = keys[rng.nextInt(below: keys.count)]
        if rng.nextInt(below: 6) == 0 { out[key] = nil } else { out[key] = absurd[rng.nextInt(below: absurd.count)] }
        return out
    }

    static func write(_ object: Any, to path: String) throws {
        // NaN is not JSON: write it as a bare token, which a strict reader must refuse.
        var text = String(decoding: try JSONSerialization.data(withJSONObject: sanitize(object), options: [.sortedKeys]), as: UTF8.self)
        text = text.replacingOccurrences(of: "\"__NaN__\"", with: "NaN")
        try text.write(toFile: path, atomically: false, encoding: .utf8)
    }

    static func sanitize(_ value: Any) -> Any {
        switch value {
        case let d as Double where d.isNaN: return "__NaN__"
        case let dict as [String: Any]: return dict.mapValues(sanitize)
        case let list as [Any]: return list.map(sanitize)
        default: return value
        }
    }

    static func json(_ path: String) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as! [String: Any]
    }

    static func scratch() throws -> String {
        let folder = NSTemporaryDirectory() + "subspace-fuzz-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        return folder
    }

    @Test func corruptedInputsAreRefusedOrReadNeverCrash() throws {
        let fixtures = Self.fixtures()
        let work = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: work) }
        var rng = RandomStream(seed: 13)
        let tally = Tally()
        let started = DispatchTime.now().uptimeNanoseconds

        // HF model folders: config.json fields (sizes first) and the weights file.
        let configKeys = ["n_layer", "n_embd", "n_head", "vocab_size", "n_positions", "n_inner", "num_hidden_layers", "hidden_size",
                          "num_attention_heads", "num_key_value_heads", "intermediate_size", "head_dim", "max_position_embeddings",
                          "rms_norm_eps", "layer_norm_epsilon", "rope_theta", "model_type", "tie_word_embeddings"]
        for family in ["gpt2-tiny", "llama-tiny"] {
            let source = (fixtures as NSString).appendingPathComponent(family)
            let config = try Self.json(source + "/config.json")
            let weights = [UInt8](try Data(contentsOf: URL(fileURLWithPath: source + "/model.safetensors")))
            let folder = work + "/\(family)"
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            let reference = try HFCheckpoint.load(folder: source)
            for trial in 0..<210 {
                let corruptWeights = trial % 4 == 3
                try Self.write(corruptWeights ? config : Self.corruptJSON(config, keys: configKeys, &rng), to: folder + "/config.json")
                try Data(corruptWeights ? Self.corruptBytes(weights, &rng) : weights).write(to: URL(fileURLWithPath: folder + "/model.safetensors"))
                tally.trial("\(family) #\(trial)") {
                    let model = try HFCheckpoint.load(folder: folder)
                    // A correct read: the weights are the file's (or the fixture's, when only the config changed).
                    if !corruptWeights, model.config.vocabularySize == reference.config.vocabularySize,
                       model.config.hiddenSize == reference.config.hiddenSize {
                        #expect(model.tensor(.tokenEmbedding).scalars == reference.tensor(.tokenEmbedding).scalars, "\(family) #\(trial)")
                    }
                }
            }
        }
        // The issue's case: n_layer 1e9 over the weights of 2 layers, refused (not allocated) and named.
        let gpt2 = try Self.json(fixtures + "/gpt2-tiny/config.json")
        var huge = gpt2
        huge["n_layer"] = 1_000_000_000
        try Self.write(huge, to: work + "/gpt2-tiny/config.json")
        try Data(contentsOf: URL(fileURLWithPath: fixtures + "/gpt2-tiny/model.safetensors")).write(to: URL(fileURLWithPath: work + "/gpt2-tiny/model.safetensors"))
        #expect(throws: CheckpointError.self) { _ = try HFCheckpoint.load(folder: work + "/gpt2-tiny") }

        // PEFT adapter folders against the llama fixture.
        let llama = try ModelConfig(hfConfigAt: fixtures + "/llama-tiny/config.json")
        let adapterSource = fixtures + "/llama-tiny-lora"
        let adapterConfig = try Self.json(adapterSource + "/adapter_config.json")
        let adapterWeights = [UInt8](try Data(contentsOf: URL(fileURLWithPath: adapterSource + "/adapter_model.safetensors")))
        let adapterFolder = work + "/adapter"
        try FileManager.default.createDirectory(atPath: adapterFolder, withIntermediateDirectories: true)
        for trial in 0..<180 {
            let corruptWeights = trial % 3 == 2
            try Self.write(corruptWeights ? adapterConfig : Self.corruptJSON(adapterConfig, keys: ["r", "lora_alpha", "target_modules", "lora_dropout", "use_rslora", "peft_type", "bias"], &rng),
                           to: adapterFolder + "/adapter_config.json")
            try Data(corruptWeights ? Self.corruptBytes(adapterWeights, &rng) : adapterWeights).write(to: URL(fileURLWithPath: adapterFolder + "/adapter_model.safetensors"))
            tally.trial("adapter #\(trial)") { _ = try PEFTAdapter.load(folder: adapterFolder, for: llama) }
        }

        // Tokenizer files.
        let tokenizerBytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: fixtures + "/bpe-tokenizer/tokenizer.json")))
        let tokenizerPath = work + "/tokenizer.json"
        for trial in 0..<120 {
            try Data(Self.corruptBytes(tokenizerBytes, &rng)).write(to: URL(fileURLWithPath: tokenizerPath))
            tally.trial("tokenizer #\(trial)") {
                let tokenizer = try Tokenizers.load(tokenizerPath)
                _ = tokenizer.encode("To be, or not to be: that is the question. 12 + 30 = 42")
            }
        }

        // YAML run configs: a field set to an absurd value, a line dropped, or the bytes corrupted.
        let yaml = try String(contentsOfFile: TestFiles.repository + "/configs/base.yaml", encoding: .utf8)
        let lines = yaml.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        let valued = lines.indices.filter { let t = lines[$0].trimmingCharacters(in: .whitespaces); return !t.hasPrefix("#") && t.contains(": ") }
        for trial in 0..<200 {
            var text: String
            switch trial % 4 {
            case 0, 1:
                var copy = lines
                let at = valued[rng.nextInt(below: valued.count)]
                let key = copy[at].prefix(upTo: copy[at].range(of: ": ")!.lowerBound)
                copy[at] = key + ": " + Self.absurdYAML[rng.nextInt(below: Self.absurdYAML.count)]
                text = copy.joined(separator: "\n")
            case 2:
                var copy = lines
                copy.remove(at: valued[rng.nextInt(below: valued.count)])
                text = copy.joined(separator: "\n")
            default:
                text = String(decoding: Self.corruptBytes(Array(yaml.utf8), &rng), as: UTF8.self)
            }
            tally.trial("yaml #\(trial)") {
                let config = try TrainConfig.load(yaml: text, source: "fuzz.yaml")
                try config.validate(worldSize: 1 + trial % 3)
            }
        }

        // Checkpoints: a saved step of a tiny model, its manifest fields or its piece corrupted, loaded into a fresh engine.
        let checkpoints = try LocalCluster.run(size: 1) { comm in try Self.fuzzCheckpoints(work: work, communicator: comm) }
        tally.merge(checkpoints[0])

        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) * 1e-9
        print("fuzz: \(tally.total) corrupted inputs, \(tally.refused) refused, \(tally.read) read, in \(String(format: "%.1f", seconds)) s; "
              + "slowest trial \(String(format: "%.3f", tally.slowest)) s (\(tally.slowestWhat))")
        #expect(tally.total >= 1000)
        #expect(tally.refused > 0 && tally.read > 0)
        #expect(tally.slowest < 5, "a trial took \(tally.slowest) s: \(tally.slowestWhat)")
    }

    static func fuzzCheckpoints(work: String, communicator comm: LocalCommunicator) throws -> Tally.Summary {
        var rng = RandomStream(seed: 17)
        let tally = Tally()
        let modelConfig = ModelConfig(family: .gpt2, vocabularySize: 32, hiddenSize: 16, layerCount: 2, headCount: 2, intermediateSize: 32, maxPositions: 8)
        func engine() -> ZeroEngine {
            let model = Transformer(config: modelConfig)
            model.initialize(seed: 1, std: 0.02)
            return ZeroEngine(model: model, communicator: comm, stage: 1, adam: AdamW(), maxGradientNorm: nil)
        }
        let store = CheckpointStore(folder: work + "/checkpoints")
        try store.save(engine: engine(), step: 5, keep: 1)
        let step = work + "/checkpoints/" + CheckpointStore.stepName(5)
        let manifestPath = step + "/" + CheckpointStore.manifestName
        let manifest = try Self.json(manifestPath)
        let manifestBytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: manifestPath)))
        let piece = step + "/" + ((manifest["files"] as! [[String: Any]])[0]["name"] as! String)
        let pieceBytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: piece)))
        let target = engine()
        for trial in 0..<200 {
            var files = manifest["files"] as! [[String: Any]]
            var corrupted = manifest
            switch trial % 4 {
            case 0:
                corrupted = Self.corruptJSON(manifest, keys: ["step", "optimizer_step", "format", "tensors", "files", "world_size", "zero_stage"], &rng)
            case 1:
                files[0] = Self.corruptJSON(files[0], keys: ["name", "bytes", "sha256"], &rng)
                corrupted["files"] = files
            case 2:
                var tensors = manifest["tensors"] as! [String: Any]
                let name = tensors.keys.sorted()[rng.nextInt(below: tensors.count)]
                tensors[name] = Self.corruptJSON(tensors[name] as! [String: Any], keys: ["shape", "trainable"], &rng)
                corrupted["tensors"] = tensors
            default:
                break
            }
            if trial % 4 == 3 {
                try Data(manifestBytes).write(to: URL(fileURLWithPath: manifestPath))
                try Data(Self.corruptBytes(pieceBytes, &rng)).write(to: URL(fileURLWithPath: piece))
            } else {
                try Self.write(corrupted, to: manifestPath)
                try Data(pieceBytes).write(to: URL(fileURLWithPath: piece))
            }
            tally.trial("checkpoint #\(trial)") {
                let restored = try CheckpointStore.load(step, into: target)
                #expect(restored.step >= 0, "checkpoint #\(trial)")
            }
        }
        return tally.summary
    }
}

import Foundation
import Testing
import SubspaceCore
@testable import SubspaceModel

@Suite struct CheckpointTests {
    func temporary() -> String {
        let path = NSTemporaryDirectory() + "subspace-ckpt-\(UUID().uuidString)"
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// A model written here has exactly the fixture's tensor names, shapes and dtypes, a config.json that
    /// reads back to the same config, and the same values.
    @Test(arguments: ["gpt2-tiny", "llama-tiny"])
    func exportMatchesTheHFLayout(name: String) throws {
        let source = modelFixtures() + "/" + name
        let model = try HFCheckpoint.load(folder: source)
        let out = temporary()
        defer { try? FileManager.default.removeItem(atPath: out) }
        try HFCheckpoint.save(model, to: out)
        let original = try SafetensorsFile(path: source + "/model.safetensors")
        let written = try SafetensorsFile(path: out + "/model.safetensors")
        #expect(Set(written.names) == Set(original.names))
        for tensor in original.entries {
            let w = try written.info(tensor.name)
            #expect(w.shape == tensor.shape && w.dtype == tensor.dtype, "\(tensor.name)")
            #expect(try written.tensor(tensor.name) == original.tensor(tensor.name), "\(tensor.name)")
        }
        #expect(try ModelConfig(hfConfigAt: out + "/config.json") == model.config)
        // The original config.json's keys that describe the model are all present with equal values.
        let a = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: source + "/config.json"))) as! [String: Any]
        let b = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/config.json"))) as! [String: Any]
        for key in ["model_type", "vocab_size", "n_embd", "n_layer", "n_head", "hidden_size", "num_hidden_layers",
                    "num_attention_heads", "num_key_value_heads", "intermediate_size", "tie_word_embeddings"] where a[key] != nil {
            #expect("\(a[key]!)" == "\(b[key] ?? "missing")", "config key \(key)")
        }
    }

    /// A wrong --model says what is wrong with the path: no such folder, a file, a training run's folder
    /// (its model is final/), or a folder without config.json; a model folder without tokenizer.json says
    /// to pass --tokenizer, `bytes` for a 256-entry vocabulary.
    @Test func wrongModelFoldersAreNamed() throws {
        let root = temporary()
        defer { try? FileManager.default.removeItem(atPath: root) }
        func message(_ folder: String) -> String {
            do { _ = try ModelConfig(hfConfigAt: folder + "/config.json"); return "loaded" } catch { return "\(error)" }
        }
        #expect(message(root + "/absent").hasSuffix(": no folder \(root)/absent"))
        FileManager.default.createFile(atPath: root + "/file", contents: Data("x".utf8))
        #expect(message(root + "/file").hasSuffix(": \(root)/file is a file, not a model folder"))
        try FileManager.default.createDirectory(atPath: root + "/run/final", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: modelFixtures() + "/gpt2-tiny/config.json", toPath: root + "/run/final/config.json")
        #expect(message(root + "/run").hasSuffix("(\(root)/run is a training run's folder; its model is \(root)/run/final)"))
        #expect(message(root).hasSuffix("no such file or folder (a model folder holds config.json and its weights)"))
        #expect(message(root + "/run/final") == "loaded")
        func tokenizerMessage(vocabulary: Int) -> String {
            do { _ = try Tokenizers.load(nil, forModel: root + "/run/final", vocabularySize: vocabulary); return "loaded" } catch { return "\(error)" }
        }
        #expect(tokenizerMessage(vocabulary: 256).hasSuffix("pass --tokenizer bytes (this model's vocabulary is 256: a byte-level model)"))
        #expect(tokenizerMessage(vocabulary: 50257).hasSuffix("pass --tokenizer with the tokenizer.json it was trained with"))
        #expect(try Tokenizers.load("bytes", forModel: root + "/run/final", vocabularySize: 256).vocabularySize == 256)
    }

    @Test func shardedAndHalfPrecisionRoundTrip() throws {
        let model = try HFCheckpoint.load(folder: modelFixtures() + "/llama-tiny")
        let out = temporary()
        defer { try? FileManager.default.removeItem(atPath: out) }
        try HFCheckpoint.save(model, to: out, dtype: .bf16, maxShardBytes: 40_000)
        #expect(FileManager.default.fileExists(atPath: out + "/model.safetensors.index.json"))
        let back = try HFCheckpoint.load(folder: out)
        for (name, t) in HFCheckpoint.hfTensors(of: model) {
            let expected = t.scalars.map { HalfPrecision.float(fromBF16: HalfPrecision.bf16(from: $0)) }
            #expect(HFCheckpoint.hfTensors(of: back).first { $0.name == name }!.tensor.scalars == expected, "\(name)")
        }
    }

    @Test func loadingErrorsNameTheTensor() throws {
        let source = modelFixtures() + "/gpt2-tiny"
        let out = temporary()
        defer { try? FileManager.default.removeItem(atPath: out) }
        try FileManager.default.copyItem(atPath: source + "/config.json", toPath: out + "/config.json")
        let original = try SafetensorsFile(path: source + "/model.safetensors")
        func write(skipping skip: String? = nil, reshaping: String? = nil, extra: String? = nil) throws {
            var w = SafetensorsWriter()
            for name in original.names where name != skip {
                let t = try original.tensor(name)
                w.add(name, name == reshaping ? t.reshaped([t.count]) : t)
            }
            if let extra { w.add(extra, Tensor(zeros: [2])) }
            try w.write(to: out + "/model.safetensors")
        }
        try write(skipping: "transformer.h.1.ln_2.bias")
        #expect { try HFCheckpoint.load(folder: out) } throws: { "\($0)".contains("transformer.h.1.ln_2.bias") && "\($0)".contains("missing") }
        try write(reshaping: "transformer.h.0.attn.c_attn.weight")
        #expect { try HFCheckpoint.load(folder: out) } throws: { "\($0)".contains("c_attn.weight") && "\($0)".contains("[48, 144]") }
        try write(extra: "transformer.h.7.mlp.c_fc.weight")
        #expect { try HFCheckpoint.load(folder: out) } throws: { "\($0)".contains("transformer.h.7.mlp.c_fc.weight") }
        try #"{"model_type": "bert"}"#.write(toFile: out + "/config.json", atomically: true, encoding: .utf8)
        #expect { try HFCheckpoint.load(folder: out) } throws: { "\($0)".contains("model_type") && "\($0)".contains("bert") }
        try #"{"model_type": "gpt2", "n_embd": 48, "n_layer": 2, "n_head": 5, "n_positions": 64, "vocab_size": 256}"#
            .write(toFile: out + "/config.json", atomically: true, encoding: .utf8)
        #expect { try HFCheckpoint.load(folder: out) } throws: { "\($0)".contains("heads") }
    }

    /// An adapter written here reads back with identical tensors and config.
    @Test func peftAdapterRoundTrip() throws {
        let root = modelFixtures()
        let config = try ModelConfig(hfConfigAt: root + "/llama-tiny/config.json")
        let original = try PEFTAdapter.load(folder: root + "/llama-tiny-lora", for: config)
        let out = temporary()
        defer { try? FileManager.default.removeItem(atPath: out) }
        try PEFTAdapter.save(original, model: config, to: out, baseModel: "llama-tiny")
        let back = try PEFTAdapter.load(folder: out, for: config)
        #expect(back.config == original.config)
        for (a, b) in zip(original.adapters, back.adapters) {
            #expect(a.module == b.module)
            #expect(original.factor(a, b: false) == back.factor(b, b: false))
            #expect(original.factor(a, b: true) == back.factor(b, b: true))
        }
        // The written file uses PEFT's key names, the same set as PEFT's own file.
        let peft = try SafetensorsFile(path: root + "/llama-tiny-lora/adapter_model.safetensors")
        let ours = try SafetensorsFile(path: out + "/adapter_model.safetensors")
        #expect(Set(peft.names) == Set(ours.names))
    }

    @Test func peftDefaultInitialisation() throws {
        let config = ModelConfig(family: .llama, vocabularySize: 10, hiddenSize: 16, layerCount: 1, headCount: 2, intermediateSize: 32)
        let adapters = try LoRAAdapters(config: LoRAConfig(rank: 4, alpha: 8, targets: .names(["q_proj", "down_proj"])), model: config, seed: 3)
        for a in adapters.adapters {
            #expect(adapters.factor(a, b: true).scalars.allSatisfy { $0 == 0 }, "B starts at zero")
            let A = adapters.factor(a, b: false).scalars
            let bound = 1 / Float(a.module.inFeatures).squareRoot()
            #expect(A.allSatisfy { abs($0) <= bound } && A.map(abs).max()! > bound * 0.8, "A is kaiming-uniform")
        }
        #expect(LoRAConfig(rank: 16, alpha: 8, targets: .names([]), useRSLoRA: true).scale == 2)
        #expect(LoRAConfig(rank: 16, alpha: 8, targets: .names([])).scale == 0.5)
    }

    @Test func badAdapterFoldersAreRejected() throws {
        let root = modelFixtures()
        let config = try ModelConfig(hfConfigAt: root + "/llama-tiny/config.json")
        let out = temporary()
        defer { try? FileManager.default.removeItem(atPath: out) }
        try FileManager.default.copyItem(atPath: root + "/llama-tiny-lora/adapter_model.safetensors", toPath: out + "/adapter_model.safetensors")
        let base = try String(contentsOfFile: root + "/llama-tiny-lora/adapter_config.json", encoding: .utf8)
        for (edit, expected) in [("\"r\": 4", "shape"), ("\"use_dora\": false", "use_dora"), ("\"gate_proj\",", "belongs to no module")] {
            let replacement = edit == "\"r\": 4" ? "\"r\": 8" : edit == "\"use_dora\": false" ? "\"use_dora\": true" : ""
            try base.replacingOccurrences(of: edit, with: replacement).write(toFile: out + "/adapter_config.json", atomically: true, encoding: .utf8)
            #expect(performing: { try PEFTAdapter.load(folder: out, for: config) }, throws: { "\($0)".contains(expected) })
        }
    }

    @Test func parameterReportCountsFrozenTensors() throws {
        let model = try HFCheckpoint.load(folder: modelFixtures() + "/gpt2-tiny")
        model.frozen = [.layer(0, .q), .layer(0, .k)]
        let report = ParameterReport(model: model)
        #expect(report.total == model.layout.parameterCount)
        #expect(report.frozen == 2 * 48 * 48)
        #expect(report.rows.first { $0.name == "layers.0.attn.q.weight" }?.hfName == "transformer.h.0.attn.c_attn.weight")
        #expect(report.table.contains("frozen"))
    }
}

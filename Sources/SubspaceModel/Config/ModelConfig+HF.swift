import Foundation
import SubspaceCore

/// A model folder's `config.json` that Subspace cannot use, naming the file and key.
public struct ModelConfigError: Error, CustomStringConvertible, Sendable {
    public let file: String
    public let key: String?
    public let reason: String
    public var description: String { key.map { "\(file): '\($0)': \(reason)" } ?? "\(file): \(reason)" }
}

extension ModelConfig {
    /// Reads HF's `config.json` for `model_type` gpt2, llama or qwen2.
    public init(hfConfigAt path: String) throws {
        let data: Data, object: Any
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw ModelConfigError(file: path, key: nil, reason: Self.unreadableReason(path, error))
        }
        do { object = try JSONSerialization.jsonObject(with: data) } catch {
            throw ModelConfigError(file: path, key: nil, reason: "not valid JSON: \(FileSystemMessage.reason(error))")
        }
        guard let json = object as? [String: Any] else {
            throw ModelConfigError(file: path, key: nil, reason: "not a JSON object")
        }
        try self.init(hfConfig: json, file: path)
    }

    /// Why the config.json at `path` could not be read, in the terms of the folder a user named.
    static func unreadableReason(_ path: String, _ error: any Error) -> String {
        let files = FileManager.default
        let folder = (path as NSString).deletingLastPathComponent
        var isFolder: ObjCBool = false
        guard files.fileExists(atPath: folder, isDirectory: &isFolder) else { return "no folder \(folder)" }
        guard isFolder.boolValue else { return "\(folder) is a file, not a model folder" }
        let reason = "cannot read: \(FileSystemMessage.reason(error))"
        if files.fileExists(atPath: path) { return reason }
        let final = (folder as NSString).appendingPathComponent("final")
        if files.fileExists(atPath: (final as NSString).appendingPathComponent("config.json")) {
            return reason + " (\(folder) is a training run's folder; its model is \(final))"
        }
        return reason + " (a model folder holds config.json and its weights)"
    }

    public init(hfConfig json: [String: Any], file: String = "config.json") throws {
        func fail(_ key: String, _ reason: String) -> ModelConfigError { ModelConfigError(file: file, key: key, reason: reason) }
        func int(_ key: String, default value: Int? = nil) throws -> Int {
            guard let raw = json[key], !(raw is NSNull) else {
                if let value { return value }
                throw fail(key, "missing")
            }
            guard let n = raw as? NSNumber, let i = Int(exactly: n.doubleValue), i >= 0 else {
                throw fail(key, "must be a non-negative integer, got \(raw)")
            }
            // Sizes multiply (heads × head dimension, 4 × hidden, …): bound each so no product overflows.
            guard i < 1 << 31 else { throw fail(key, "\(raw) is larger than any model Subspace can hold (< 2^31)") }
            return i
        }
        func float(_ key: String, default value: Float? = nil) throws -> Float {
            guard let raw = json[key], !(raw is NSNull) else {
                if let value { return value }
                throw fail(key, "missing")
            }
            guard let n = raw as? NSNumber else { throw fail(key, "must be a number, got \(raw)") }
            return n.floatValue
        }
        func bool(_ key: String, default value: Bool) throws -> Bool {
            guard let raw = json[key], !(raw is NSNull) else { return value }
            guard let b = raw as? Bool else { throw fail(key, "must be true or false, got \(raw)") }
            return b
        }
        guard let type = json["model_type"] as? String else { throw fail("model_type", "missing") }
        guard let family = ModelFamily(rawValue: type) else {
            throw fail("model_type", "'\(type)' is not supported (gpt2, llama, qwen2)")
        }

        switch family {
        case .gpt2:
            let activation = json["activation_function"] as? String ?? "gelu_new"
            guard ["gelu_new", "gelu_pytorch_tanh"].contains(activation) else {
                throw fail("activation_function", "'\(activation)' is not supported (gelu_new, gelu_pytorch_tanh)")
            }
            if try bool("scale_attn_by_inverse_layer_idx", default: false) { throw fail("scale_attn_by_inverse_layer_idx", "true is not supported") }
            if try bool("reorder_and_upcast_attn", default: false) { throw fail("reorder_and_upcast_attn", "true is not supported") }
            if try !bool("scale_attn_weights", default: true) { throw fail("scale_attn_weights", "false is not supported") }
            let hidden = try int("n_embd")
            self.init(family: .gpt2, vocabularySize: try int("vocab_size"), hiddenSize: hidden,
                      layerCount: try int("n_layer"), headCount: try int("n_head"),
                      intermediateSize: try int("n_inner", default: 4 * hidden), maxPositions: try int("n_positions"),
                      normEpsilon: try float("layer_norm_epsilon", default: 1e-5),
                      tiedEmbeddings: try bool("tie_word_embeddings", default: true))
        case .llama, .qwen2:
            let activation = json["hidden_act"] as? String ?? "silu"
            guard activation == "silu" else { throw fail("hidden_act", "'\(activation)' is not supported (silu)") }
            var scaling: RotaryScaling?
            if let value = json["rope_scaling"], !(value is NSNull) {
                guard let object = value as? [String: Any] else { throw fail("rope_scaling", "is not an object") }
                scaling = try RotaryScaling.read(object, key: "rope_scaling", fail: fail)
            }
            var theta = try float("rope_theta", default: 10000)
            if let parameters = json["rope_parameters"] as? [String: Any] {
                scaling = try RotaryScaling.read(parameters, key: "rope_parameters", fail: fail) ?? scaling
                if let t = parameters["rope_theta"] as? NSNumber { theta = t.floatValue }
            }
            if family == .qwen2, try bool("use_sliding_window", default: false) {
                throw fail("use_sliding_window", "sliding-window attention is not supported")
            }
            if family == .llama, try bool("mlp_bias", default: false) { throw fail("mlp_bias", "true is not supported") }
            let hidden = try int("hidden_size"), heads = try int("num_attention_heads")
            self.init(family: family, vocabularySize: try int("vocab_size"), hiddenSize: hidden,
                      layerCount: try int("num_hidden_layers"), headCount: heads,
                      keyValueHeadCount: try int("num_key_value_heads", default: heads),
                      headDimension: try int("head_dim", default: heads > 0 ? hidden / heads : 0),
                      intermediateSize: try int("intermediate_size"),
                      maxPositions: try int("max_position_embeddings", default: 2048),
                      normEpsilon: try float("rms_norm_eps", default: 1e-6), ropeTheta: theta,
                      tiedEmbeddings: try bool("tie_word_embeddings", default: false))
            if family == .llama { attentionBias = try bool("attention_bias", default: false) }
            ropeScaling = scaling
        }
        let problems = problems()
        if !problems.isEmpty { throw ModelConfigError(file: file, key: nil, reason: problems.joined(separator: "; ")) }
    }

    /// HF's `config.json` for this model, loadable by transformers.
    public var hfConfig: [String: Any] {
        switch family {
        case .gpt2:
            return [
                "model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "vocab_size": vocabularySize,
                "n_embd": hiddenSize, "n_layer": layerCount, "n_head": headCount, "n_inner": intermediateSize,
                "n_positions": maxPositions, "layer_norm_epsilon": Double(normEpsilon), "activation_function": "gelu_new",
                "tie_word_embeddings": tiedEmbeddings, "attn_pdrop": 0.0, "embd_pdrop": 0.0, "resid_pdrop": 0.0,
                "scale_attn_weights": true, "initializer_range": 0.02, "dtype": "float32",
            ]
        case .llama, .qwen2:
            var json: [String: Any] = [
                "model_type": family.rawValue,
                "architectures": [family == .llama ? "LlamaForCausalLM" : "Qwen2ForCausalLM"],
                "vocab_size": vocabularySize, "hidden_size": hiddenSize, "num_hidden_layers": layerCount,
                "num_attention_heads": headCount, "num_key_value_heads": keyValueHeadCount, "head_dim": headDimension,
                "intermediate_size": intermediateSize, "max_position_embeddings": maxPositions,
                "rms_norm_eps": Double(normEpsilon), "rope_theta": Double(ropeTheta), "hidden_act": "silu",
                "tie_word_embeddings": tiedEmbeddings, "attention_dropout": 0.0, "initializer_range": 0.02,
                "dtype": "float32",
            ]
            if family == .llama { json["attention_bias"] = attentionBias; json["mlp_bias"] = false }
            if let ropeScaling { json["rope_scaling"] = ropeScaling.hfParameters }
            return json
        }
    }
}

import Foundation
import SubspaceCore

/// PEFT adapter folders (`adapter_config.json` + `adapter_model.safetensors`) to and from `LoRAAdapters`.
/// Keys are PEFT's: `base_model.model.<module path>.lora_A.weight` [r, in] and `.lora_B.weight` [out, r].
public enum PEFTAdapter {
    public static let configName = "adapter_config.json"
    public static let weightsName = "adapter_model.safetensors"

    public static func key(_ adapter: LoRAAdapters.Adapter, b: Bool) -> String {
        "base_model.model.\(adapter.module.path).lora_\(b ? "B" : "A").weight"
    }

    /// The name PEFT gives a factor in memory (`…lora_A.default.weight`), used for gradients.
    public static func memoryName(_ adapter: LoRAAdapters.Adapter, b: Bool) -> String {
        "base_model.model.\(adapter.module.path).lora_\(b ? "B" : "A").default.weight"
    }

    /// Reads `adapter_config.json` into a `LoRAConfig`, refusing features Subspace does not implement
    /// rather than ignoring them.
    public static func readConfig(folder: String) throws -> LoRAConfig {
        let path = (folder as NSString).appendingPathComponent(configName)
        func fail(_ key: String?, _ reason: String) -> LoRAError {
            LoRAError(reason: "\(path): " + (key.map { "'\($0)': " } ?? "") + reason)
        }
        let data: Data, object: Any
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw fail(nil, "cannot read: \(FileSystemMessage.reason(error))"
                       + (FileManager.default.fileExists(atPath: folder) ? " (a PEFT adapter folder holds adapter_config.json and adapter_model.safetensors)" : ""))
        }
        do { object = try JSONSerialization.jsonObject(with: data) } catch {
            throw fail(nil, "not valid JSON: \(FileSystemMessage.reason(error))")
        }
        guard let json = object as? [String: Any] else { throw fail(nil, "not a JSON object") }
        if let type = json["peft_type"] as? String, type != "LORA" { throw fail("peft_type", "'\(type)' is not LORA") }
        guard let r = (json["r"] as? NSNumber).flatMap({ Int(exactly: $0.doubleValue) }), r >= 1 else {
            throw fail("r", "missing or not a positive integer")
        }
        guard let alpha = json["lora_alpha"] as? NSNumber else { throw fail("lora_alpha", "missing or not a number") }
        let targets: LoRAConfig.Targets
        switch json["target_modules"] {
        case let list as [String]: targets = .names(list)
        case let pattern as String: targets = .pattern(pattern)
        default: throw fail("target_modules", "must be a list of module names or a pattern string")
        }
        if let bias = json["bias"] as? String, bias != "none" { throw fail("bias", "'\(bias)' is not supported (none)") }
        for flag in ["use_dora", "use_qalora", "lora_bias"] where (json[flag] as? Bool) == true {
            throw fail(flag, "true is not supported")
        }
        for key in ["rank_pattern", "alpha_pattern"] {
            if let d = json[key] as? [String: Any], !d.isEmpty { throw fail(key, "per-module ranks/alphas are not supported") }
        }
        for key in ["layers_to_transform", "modules_to_save", "layer_replication", "trainable_token_indices"] {
            if let v = json[key], !(v is NSNull) { throw fail(key, "is not supported (must be null)") }
        }
        let dropout = (json["lora_dropout"] as? NSNumber)?.floatValue ?? 0
        return LoRAConfig(rank: r, alpha: alpha.floatValue, targets: targets, dropout: dropout,
                          useRSLoRA: json["use_rslora"] as? Bool ?? false)
    }

    /// Loads an adapter folder for `model`: every selected module's two factors must be in the weights
    /// file with PEFT's shapes, and the file must hold nothing else.
    public static func load(folder: String, for model: ModelConfig) throws -> LoRAAdapters {
        let config = try readConfig(folder: folder)
        let file = try SafetensorsFile(path: (folder as NSString).appendingPathComponent(weightsName))
        // Refused before the adapters are allocated: every factor has r as one of its dimensions.
        let largest = try file.names.map { try file.info($0).shape.max() ?? 0 }.max() ?? 0
        guard config.rank <= largest else {
            throw LoRAError(reason: "\(folder)/\(configName): 'r': \(config.rank), but no tensor in \(weightsName) has a dimension that large")
        }
        let adapters = try LoRAAdapters(config: config, model: model)
        var expected: Set<String> = []
        for a in adapters.adapters {
            for b in [false, true] {
                let k = key(a, b: b)
                expected.insert(k)
                guard file.contains(k) else {
                    throw LoRAError(reason: "\(file.path): tensor '\(k)' missing (target_modules select \(a.module.path))")
                }
                let value = try file.tensor(k)
                let shape = b ? [a.module.outFeatures, config.rank] : [config.rank, a.module.inFeatures]
                guard value.shape == shape else {
                    throw LoRAError(reason: "\(file.path): tensor '\(k)': shape \(value.shape), expected \(shape) for r = \(config.rank)")
                }
                adapters.setFactor(a, b: b, value)
            }
        }
        if let stray = file.names.first(where: { !expected.contains($0) }) {
            throw LoRAError(reason: "\(file.path): tensor '\(stray)' belongs to no module adapter_config.json targets")
        }
        return adapters
    }

    /// Writes an adapter folder PEFT's `PeftModel.from_pretrained` loads.
    public static func save(_ adapters: LoRAAdapters, model: ModelConfig, to folder: String, baseModel: String = "") throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        var writer = SafetensorsWriter(metadata: ["format": "pt"])
        for a in adapters.adapters {
            writer.add(key(a, b: false), adapters.factor(a, b: false))
            writer.add(key(a, b: true), adapters.factor(a, b: true))
        }
        try writer.write(to: (folder as NSString).appendingPathComponent(weightsName))
        let c = adapters.config
        var json: [String: Any] = [
            "peft_type": "LORA", "task_type": "CAUSAL_LM", "r": c.rank, "lora_alpha": Double(c.alpha),
            "lora_dropout": Double(c.dropout), "use_rslora": c.useRSLoRA, "bias": "none",
            "fan_in_fan_out": model.family == .gpt2, "init_lora_weights": true, "inference_mode": true,
            "base_model_name_or_path": baseModel, "use_dora": false, "rank_pattern": [String: Any](),
            "alpha_pattern": [String: Any](), "modules_to_save": NSNull(), "layers_to_transform": NSNull(),
        ]
        switch c.targets {
        case .names(let names): json["target_modules"] = names
        case .pattern(let p): json["target_modules"] = p
        }
        let data = try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys])
        try AtomicFile.write([UInt8](data), to: (folder as NSString).appendingPathComponent(configName))
    }
}

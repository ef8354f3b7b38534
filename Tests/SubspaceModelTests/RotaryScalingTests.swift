import Foundation
import Testing
import SubspaceCore
@testable import SubspaceModel

/// Rotary scaling from config.json, against inverse-frequency tables computed with numpy following
/// transformers' formulas (Resources/rope/make_rope_reference.py) and against transformers' own logits and
/// gradients of a scaled model (Resources/rope/make_rope_model_reference.py).
@Suite struct RotaryScalingTests {
    static func config(_ extra: [String: Any]) -> [String: Any] {
        var json: [String: Any] = ["model_type": "llama", "vocab_size": 64, "hidden_size": 32, "num_hidden_layers": 1,
                                   "num_attention_heads": 2, "intermediate_size": 48, "max_position_embeddings": 64]
        json.merge(extra) { $1 }
        return json
    }

    static func load(_ json: [String: Any]) throws -> ModelConfig {
        try ModelConfig(hfConfig: json, file: "config.json")
    }

    @Test func inverseFrequenciesMatchTheReference() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Resources/rope/inv_freq.json")
        let cases = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [[String: Any]]
        for c in cases {
            let theta = (c["theta"] as! NSNumber).floatValue, dim = c["dim"] as! Int
            var json: [String: Any] = ["rope_theta": Double(theta), "head_dim": dim]
            if let scaling = c["rope_scaling"] as? [String: Any] { json["rope_scaling"] = scaling }
            // transformers 4 spelling, then transformers 5 (`rope_parameters` with the theta inside).
            var v5: [String: Any] = ["head_dim": dim, "rope_parameters": (c["rope_scaling"] as? [String: Any] ?? ["rope_type": "default"])
                .merging(["rope_theta": Double(theta)]) { $1 }]
            v5["rope_theta"] = nil
            for spelling in [json, v5] {
                let config = try Self.load(Self.config(spelling))
                let actual = Rotary.inverseFrequencies(headDimension: dim, theta: config.ropeTheta, scaling: config.ropeScaling)
                let expected = (c["inv_freq"] as! [NSNumber]).map(\.floatValue)
                #expect(actual.count == expected.count)
                let worst = zip(actual, expected).map { abs($0 - $1) / max(abs($1), 1e-30) }.max() ?? 0
                #expect(worst < 1e-6, "\(c["name"]!): worst relative difference \(worst)")
            }
        }
    }

    /// The llama-tiny fixture's weights under llama3 and linear scaling, against HF transformers' logits, loss
    /// and gradients of the same weights, config and batch (Resources/rope/make_rope_model_reference.py).
    @Test(arguments: ["llama3", "linear"])
    func scaledModelMatchesTransformers(kind: String) throws {
        let resources = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Resources/rope")
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("rope-\(kind)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        try FileManager.default.copyItem(at: resources.appendingPathComponent("\(kind).config.json"),
                                         to: folder.appendingPathComponent("config.json"))
        try FileManager.default.createSymbolicLink(atPath: folder.appendingPathComponent("model.safetensors").path,
                                                   withDestinationPath: modelFixtures() + "/llama-tiny/model.safetensors")
        let model = try HFCheckpoint.load(folder: folder.path)
        #expect(model.config.ropeScaling != nil, "\(kind): scaling read from rope_parameters")
        let reference = try SafetensorsFile(path: resources.appendingPathComponent("\(kind).reference.safetensors").path)
        let batch = try referenceBatch(SafetensorsFile(path: modelFixtures() + "/llama-tiny/reference.safetensors"))
        try expectModelMatchesReference(model, batch: batch, reference: reference, kind)
    }

    @Test func unsupportedKindsAreRefusedNamingTheKey() throws {
        for (json, key) in [(["rope_scaling": ["rope_type": "dynamic", "factor": 2.0]], "rope_scaling.rope_type"),
                            (["rope_parameters": ["rope_type": "yarn", "factor": 4.0, "rope_theta": 10000.0]], "rope_parameters.rope_type"),
                            (["rope_scaling": ["rope_type": "llama3", "factor": 8.0]], "rope_scaling.low_freq_factor")] as [([String: Any], String)] {
            do {
                _ = try Self.load(Self.config(json))
                Issue.record("accepted \(json)")
            } catch let error as ModelConfigError {
                #expect(error.key == key, "\(error)")
            }
        }
    }

    @Test func scaledConfigRoundTripsThroughHFConfig() throws {
        let config = try Self.load(Self.config(["rope_scaling": ["rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                                                 "high_freq_factor": 4.0, "original_max_position_embeddings": 32]]))
        let again = try ModelConfig(hfConfig: config.hfConfig, file: "saved.json")
        #expect(again.ropeScaling == config.ropeScaling && again.ropeScaling != nil)
    }
}

import Foundation
import Testing
import SubspaceCore
@testable import SubspaceModel

/// `subspace forward` on each fixture folder reproduces its reference file.
@Suite struct ForwardPassTests {
    @Test(arguments: [("gpt2-tiny", nil), ("llama-tiny", nil), ("llama-tiny", "llama-tiny-lora")] as [(String, String?)])
    func reproducesTheReference(model: String, adapter: String?) throws {
        let root = modelFixtures()
        let out = NSTemporaryDirectory() + "subspace-forward-\(UUID().uuidString).safetensors"
        defer { try? FileManager.default.removeItem(atPath: out) }
        let referencePath = root + "/" + (adapter ?? model) + "/reference.safetensors"
        _ = try ForwardPass.run(model: root + "/" + model, adapter: adapter.map { root + "/" + $0 },
                                input: referencePath, output: out, gradients: true)
        let reference = try SafetensorsFile(path: referencePath)
        let result = try SafetensorsFile(path: out)
        expectAllClose(try result.tensor("logits").scalars, try reference.tensor("logits").scalars, rtol: 1e-5, atol: 1e-5, "logits")
        expectAllClose(try result.tensor("loss").scalars, try reference.tensor("loss").scalars, rtol: 1e-5, atol: 0, "loss")
        let grads = result.names.filter { $0.hasPrefix("grad.") }
        #expect(grads.count == reference.names.filter { $0.hasPrefix("grad.") }.count)
        for name in grads {
            // PEFT names the factors `lora_A.default.weight` in memory and `lora_A.weight` in files.
            let referenceName = name.replacingOccurrences(of: ".lora_A.weight", with: ".lora_A.default.weight")
                .replacingOccurrences(of: ".lora_B.weight", with: ".lora_B.default.weight")
            let expected = try reference.tensor(referenceName)
            let scale = expected.scalars.map(abs).max() ?? 0
            expectAllClose(try result.tensor(name).scalars, expected.scalars, rtol: 1e-4, atol: 1e-4 * scale, name)
        }
    }

    @Test func badInputsNameTheProblem() throws {
        let root = modelFixtures()
        let dir = NSTemporaryDirectory() + "subspace-forward-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func input(_ name: String, _ ids: [Int64], _ shape: [Int]) throws -> String {
            var w = SafetensorsWriter()
            w.add(name, integers: ids, shape: shape)
            let path = dir + "/\(UUID().uuidString).safetensors"
            try w.write(to: path)
            return path
        }
        let model = root + "/gpt2-tiny"
        let cases: [(String, String)] = [
            (try input("tokens", [1, 2], [1, 2]), "input_ids"),
            (try input("input_ids", [1, 2, 3], [3]), "[B, T]"),
            (try input("input_ids", [1, 300], [1, 2]), "300"),
            (try input("input_ids", [Int64](repeating: 1, count: 65), [1, 65]), "65"),
        ]
        for (path, fragment) in cases {
            #expect(performing: { try ForwardPass.run(model: model, adapter: nil, input: path, output: dir + "/o.safetensors", gradients: false) },
                    throws: { "\($0)".contains(fragment) })
        }
        #expect(!FileManager.default.fileExists(atPath: dir + "/o.safetensors"), "nothing is written on a bad input")
    }
}

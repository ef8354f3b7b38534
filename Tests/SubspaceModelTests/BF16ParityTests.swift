import Foundation
import Testing
import SubspaceCore
@testable import SubspaceModel

/// bf16 precision held to PyTorch's own bf16 error: on each fixture, Subspace's bf16 logits and every
/// gradient differ from the fixture's float32 reference by at most twice what PyTorch's autocast-bf16
/// run differs by (relative Frobenius), as recorded by Resources/bf16/make_bf16_reference.py in
/// bf16_errors.json. Runs the emulated backend everywhere (same products, fp32 sums in another order)
/// and oneDNN where the CPU has bf16 instructions.
@Suite(.serialized) struct BF16ParityTests {
    struct PyTorchErrors: Decodable {
        struct Model: Decodable { let logits: Double; let loss: Double; let grads: [String: Double] }
        let models: [String: Model]
    }

    static func pytorchErrors() throws -> PyTorchErrors {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Resources/bf16/bf16_errors.json")
        return try JSONDecoder().decode(PyTorchErrors.self, from: Data(contentsOf: url))
    }

    static var backends: [BF16GEMM.Backend] { BF16GEMM.support.available ? [.emulated, .oneDNN] : [.emulated] }

    /// ‖a − e‖ / ‖e‖ in double.
    static func relativeError(_ a: [Float], _ e: [Float]) -> Double {
        var d = 0.0, n = 0.0
        for (x, y) in zip(a, e) { d += (Double(x) - Double(y)) * (Double(x) - Double(y)); n += Double(y) * Double(y) }
        return (d / max(n, 1e-300)).squareRoot()
    }

    @Test(arguments: ["gpt2-tiny", "llama-tiny", "llama-tiny-lora"])
    func withinTwicePyTorchsBF16Error(name: String) throws {
        let torch = try #require(try Self.pytorchErrors().models[name], "\(name) missing from bf16_errors.json")
        let root = modelFixtures()
        let lora = name.hasSuffix("-lora")
        let (savedBackend, savedWorkers) = (BF16GEMM.backend, Parallel.workers)
        defer { (BF16GEMM.backend, Parallel.workers) = (savedBackend, savedWorkers) }
        Parallel.workers = 2
        for backend in Self.backends {
            BF16GEMM.backend = backend
            let model = try HFCheckpoint.load(folder: root + (lora ? "/llama-tiny" : "/" + name))
            if lora {
                model.adapters = try PEFTAdapter.load(folder: root + "/" + name, for: model.config)
                model.frozen = Set(model.layout.entries.map(\.role))
            }
            model.precision = .bf16
            let reference = try SafetensorsFile(path: root + "/" + name + "/reference.safetensors")
            let batch = try referenceBatch(reference)
            let loss = try #require(model.forward(ids: batch.ids, targets: batch.targets, B: batch.B, T: batch.T))
            let logitsError = Self.relativeError(model.logits.scalars, try reference.tensor("logits").scalars)
            #expect(logitsError <= 2 * torch.logits, "\(name) \(backend): logits error \(logitsError), PyTorch's bf16 \(torch.logits)")
            let lossError = Self.relativeError([loss], try reference.tensor("loss").scalars)
            #expect(lossError <= max(2 * torch.loss, 1e-4), "\(name) \(backend): loss error \(lossError), PyTorch's bf16 \(torch.loss)")

            model.zeroGradients()
            model.backward()
            var grads: [(String, Tensor)] = []
            if let adapters = model.adapters {
                for a in adapters.adapters {
                    for b in [false, true] { grads.append((PEFTAdapter.memoryName(a, b: b), adapters.factor(a, b: b, gradient: true))) }
                }
            } else {
                grads = HFCheckpoint.hfGradients(of: model).map { ($0.0, $0.1) }
            }
            #expect(grads.count == torch.grads.count, "\(name): \(grads.count) gradients, the reference has \(torch.grads.count)")
            for (hfName, g) in grads {
                let bound = try #require(torch.grads[hfName], "\(name): no PyTorch bf16 error for \(hfName)")
                let error = Self.relativeError(g.scalars, try reference.tensor("grad." + hfName).scalars)
                #expect(error <= 2 * bound, "\(name) \(backend): grad \(hfName) error \(error), PyTorch's bf16 \(bound)")
            }
            // Not fp32 in disguise: bf16 rounding shows (PyTorch's own error is ~4e-3 on the logits).
            #expect(logitsError > 1e-4, "\(name) \(backend): logits error \(logitsError) is fp32's, not bf16's")
        }
    }

    /// Switching precision changes only the products: fp32 after bf16 is bit-identical to fp32 before,
    /// and two bf16 passes agree bit for bit (weights are reconverted per forward pass).
    @Test func precisionSwitchesCleanly() throws {
        let saved = BF16GEMM.backend
        defer { BF16GEMM.backend = saved }
        BF16GEMM.backend = .emulated
        let folder = modelFixtures() + "/gpt2-tiny"
        let model = try HFCheckpoint.load(folder: folder)
        let batch = try referenceBatch(try SafetensorsFile(path: folder + "/reference.safetensors"))
        func pass() -> [Float] {
            model.forward(ids: batch.ids, targets: batch.targets, B: batch.B, T: batch.T)
            return model.logits.scalars
        }
        let fp32 = pass()
        model.precision = .bf16
        let first = pass(), second = pass()
        #expect(first == second)
        #expect(first != fp32)
        model.precision = .fp32
        #expect(pass() == fp32)
    }

    /// Checkpointed layers recompute their forward in backward from the same bf16 copies: gradients are
    /// bit-identical to keeping the activations, also with the head in row chunks.
    @Test func checkpointingKeepsBF16GradientsBitIdentical() throws {
        let saved = BF16GEMM.backend
        defer { BF16GEMM.backend = saved }
        BF16GEMM.backend = .emulated
        let folder = modelFixtures() + "/llama-tiny"
        let batch = try referenceBatch(try SafetensorsFile(path: folder + "/reference.safetensors"))
        var results: [[Float]] = []
        for mode in [ActivationCheckpointing.none, .layers] {
            let model = try HFCheckpoint.load(folder: folder)
            model.precision = .bf16
            model.activationCheckpointing = mode
            model.headChunkRows = 7
            model.forward(ids: batch.ids, targets: batch.targets, B: batch.B, T: batch.T)
            model.zeroGradients()
            model.backward()
            results.append(HFCheckpoint.hfGradients(of: model).flatMap { $0.1.scalars })
        }
        #expect(results[0] == results[1])
    }
}

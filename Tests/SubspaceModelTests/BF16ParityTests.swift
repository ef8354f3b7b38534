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
        let savedWorkers = Parallel.workers
        defer { Parallel.workers = savedWorkers }
        Parallel.workers = 2
        for backend in Self.backends {
            let model = try HFCheckpoint.load(folder: root + (lora ? "/llama-tiny" : "/" + name))
            if lora {
                model.adapters = try PEFTAdapter.load(folder: root + "/" + name, for: model.config)
                model.frozen = Set(model.layout.entries.map(\.role))
            }
            model.precision = .bf16
            model.bf16Backend = backend
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
    /// and two bf16 passes agree bit for bit (the second reuses the first's copies: no conversion).
    @Test func precisionSwitchesCleanly() throws {
        let folder = modelFixtures() + "/gpt2-tiny"
        let model = try HFCheckpoint.load(folder: folder)
        let batch = try referenceBatch(try SafetensorsFile(path: folder + "/reference.safetensors"))
        func pass() -> [Float] {
            model.forward(ids: batch.ids, targets: batch.targets, B: batch.B, T: batch.T)
            return model.logits.scalars
        }
        let fp32 = pass()
        model.precision = .bf16
        model.bf16Backend = .emulated
        let first = pass()
        #expect(model.bf16Conversions == model.layout.blockCount)
        let second = pass()
        #expect(model.bf16Conversions == model.layout.blockCount)
        #expect(first == second)
        #expect(first != fp32)
        model.precision = .fp32
        #expect(pass() == fp32)
    }

    /// Checkpointed layers recompute their forward in backward from the same bf16 copies: gradients are
    /// bit-identical to keeping the activations, also with the head in row chunks.
    @Test func checkpointingKeepsBF16GradientsBitIdentical() throws {
        let folder = modelFixtures() + "/llama-tiny"
        let batch = try referenceBatch(try SafetensorsFile(path: folder + "/reference.safetensors"))
        var results: [[Float]] = []
        for mode in [ActivationCheckpointing.none, .layers] {
            let model = try HFCheckpoint.load(folder: folder)
            model.precision = .bf16
            model.bf16Backend = .emulated
            model.activationCheckpointing = mode
            model.headChunkRows = 7
            model.forward(ids: batch.ids, targets: batch.targets, B: batch.B, T: batch.T)
            model.zeroGradients()
            model.backward()
            results.append(HFCheckpoint.hfGradients(of: model).flatMap { $0.1.scalars })
        }
        #expect(results[0] == results[1])
    }

    /// The bf16 copies follow every change of the fp32 parameters: after `setTensor`, a write through
    /// `parameterStorage` and a LoRA merge, the next bf16 pass equals a fresh model's with those
    /// parameters bit for bit, converting each block once per change.
    @Test func parameterChangesReachTheBF16Copies() throws {
        let folder = modelFixtures() + "/llama-tiny"
        let batch = try referenceBatch(try SafetensorsFile(path: folder + "/reference.safetensors"))
        let model = try HFCheckpoint.load(folder: folder)
        model.precision = .bf16
        model.bf16Backend = .emulated
        func pass(_ m: Transformer) -> [Float] {
            m.forward(ids: batch.ids, targets: batch.targets, B: batch.B, T: batch.T)
            return m.logits.scalars
        }
        /// A fresh bf16 model holding `model`'s parameters now.
        func fresh() -> [Float] {
            let other = Transformer(config: model.config)
            other.parameterStorage.pointer.update(from: model.flatParameters.pointer, count: model.layout.totalCount)
            other.precision = .bf16
            other.bf16Backend = .emulated
            return pass(other)
        }
        var previous = pass(model)
        let blocks = model.layout.blockCount
        var conversions = model.bf16Conversions
        let q = model.tensor(.layer(1, .q))
        let adapters = try LoRAAdapters(config: LoRAConfig(rank: 2, alpha: 4, targets: .names(["q_proj", "down_proj"])), model: model.config)
        var rng = RandomStream(seed: 5)
        rng.fillNormal(UnsafeMutableBufferPointer(start: adapters.storage.pointer, count: adapters.totalCount), std: 0.3)
        let changes: [(String, () -> Void)] = [
            ("setTensor", { model.setTensor(.layer(1, .q), Tensor(shape: q.shape, values: q.scalars.map { $0 * 1.5 })) }),
            ("parameterStorage", { model.parameterStorage.pointer[model.layout.offset(.layer(0, .down)) + 3] += 0.25 }),
            ("LoRA merge", { adapters.merge(into: model) }),
        ]
        for (name, change) in changes {
            change()
            let now = pass(model)
            #expect(now != previous, "\(name): the bf16 pass did not change")
            #expect(now == fresh(), "\(name): stale bf16 copies")
            // The merge acquires the layers it changes (a conversion each) before the pass reconverts all.
            #expect(model.bf16Conversions - conversions >= blocks, "\(name)")
            conversions = model.bf16Conversions
            previous = now
        }
    }

    /// Generation in bf16 converts each block once for all its tokens (and not again in a second call
    /// while the parameters stay), and greedy tokens with the KV cache equal the whole-sequence bf16
    /// forward's (the output head included).
    @Test func generationConvertsEachBlockOnce() throws {
        let config = ModelConfig(family: .llama, vocabularySize: 23, hiddenSize: 16, layerCount: 2, headCount: 4,
                                 keyValueHeadCount: 2, intermediateSize: 24, maxPositions: 20)
        let model = Transformer(config: config)
        model.initialize(seed: 11, std: 0.5)
        model.precision = .bf16
        model.bf16Backend = .emulated
        let prompt: [Int32] = [3, 17, 5, 9]
        let generator = Generator(model: model)
        let generated = generator.generate(prompt: prompt, options: SamplingOptions(maxNewTokens: 10))
        #expect(generated.count == 10)
        #expect(model.bf16Conversions == model.layout.blockCount)
        #expect(generator.generate(prompt: prompt, options: SamplingOptions(maxNewTokens: 10)) == generated)
        #expect(model.bf16Conversions == model.layout.blockCount)
        GenerationTests.expectGreedyMatchesFullForward(model, prompt: prompt, generated: generated, "bf16")
        #expect(model.bf16Conversions == model.layout.blockCount)
    }
}

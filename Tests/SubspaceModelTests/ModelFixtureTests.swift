import Foundation
import Testing
import SubspaceCore
@testable import SubspaceModel

/// The whole model against PyTorch / HF transformers (fixtures README: 1e-5 on logits and loss, 1e-4
/// on gradients).
@Suite struct ModelFixtureTests {
    /// With one worker and with two (row-split GEMMs, attention heads in parallel).
    @Test(arguments: ["gpt2-tiny", "llama-tiny"], [1, 2])
    func logitsLossAndGradientsMatchPyTorch(name: String, workers: Int) throws {
        let saved = Parallel.workers
        Parallel.workers = workers
        defer { Parallel.workers = saved }
        let folder = modelFixtures() + "/" + name
        let model = try HFCheckpoint.load(folder: folder)
        let reference = try SafetensorsFile(path: folder + "/reference.safetensors")
        try expectModelMatchesReference(model, batch: try referenceBatch(reference), reference: reference, name)
    }

    @Test func loraLogitsAndGradientsMatchPEFT() throws {
        let root = modelFixtures()
        let model = try HFCheckpoint.load(folder: root + "/llama-tiny")
        let adapters = try PEFTAdapter.load(folder: root + "/llama-tiny-lora", for: model.config)
        model.adapters = adapters
        model.frozen = Set(model.layout.entries.map(\.role))
        #expect(adapters.adapters.count == 14 && adapters.config.scale == 2)

        let reference = try SafetensorsFile(path: root + "/llama-tiny-lora/reference.safetensors")
        let batch = try referenceBatch(reference)
        let loss = try #require(model.forward(ids: batch.ids, targets: batch.targets, B: batch.B, T: batch.T))
        expectAllClose(model.logits.scalars, try reference.tensor("logits").scalars, rtol: 1e-5, atol: 1e-5, "LoRA logits")
        expectAllClose([loss], try reference.tensor("loss").scalars, rtol: 1e-5, atol: 0, "LoRA loss")

        model.zeroGradients()
        model.backward()
        #expect(model.gradientStorage == nil, "a fully frozen base allocates no gradients")
        for a in adapters.adapters {
            for b in [false, true] {
                let expected = try reference.tensor("grad." + PEFTAdapter.memoryName(a, b: b))
                let got = adapters.factor(a, b: b, gradient: true)
                let scale = expected.scalars.map(abs).max() ?? 0
                expectAllClose(got.scalars, expected.scalars, rtol: 1e-4, atol: 1e-4 * scale, "grad \(PEFTAdapter.memoryName(a, b: b))")
            }
        }
    }

    @Test func loraMergeMatchesPEFTMergeAndUnload() throws {
        let root = modelFixtures()
        let model = try HFCheckpoint.load(folder: root + "/llama-tiny")
        let before = model.parameterStorage.pointer.withMemoryRebound(to: Float.self, capacity: model.layout.totalCount) {
            Array(UnsafeBufferPointer(start: $0, count: model.layout.totalCount))
        }
        let adapters = try PEFTAdapter.load(folder: root + "/llama-tiny-lora", for: model.config)
        adapters.merge(into: model)
        let merged = try SafetensorsFile(path: root + "/llama-tiny-lora/merged.safetensors")
        for (name, t) in HFCheckpoint.hfTensors(of: model) {
            expectAllClose(t.scalars, try merged.tensor(name).scalars, rtol: 1e-5, atol: 1e-6, "merged \(name)")
        }
        adapters.unmerge(from: model)
        let after = Array(UnsafeBufferPointer(start: model.parameterStorage.pointer, count: model.layout.totalCount))
        expectAllClose(after, before, rtol: 0, atol: 1e-6, "unmerge restores the base")
    }
}

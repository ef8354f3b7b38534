import Foundation
import Testing
import SubspaceCore
import SubspaceModel
@testable import SubspaceTraining

/// Three steps of torch.optim.AdamW(lr 1e-3, betas (0.9, 0.95), eps 1e-8, weight decay 0.1 on rank ≥ 2)
/// with clipping to 1.0, on the fixtures' batch: losses, pre-clip norms and the weights after.
@Suite struct AdamWFixtureTests {
    static var fixtures: String {
        ProcessInfo.processInfo.environment["SUBSPACE_FIXTURES"]
            ?? URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("shared/fixtures").path
    }

    func batch(_ file: SafetensorsFile) throws -> (ids: [Int32], targets: [Int32], B: Int, T: Int) {
        let (shape, values) = try file.integers("input_ids")
        let ids = values.map { Int32($0) }
        var targets = [Int32](repeating: -100, count: ids.count)
        for b in 0..<shape[0] { for t in 0..<(shape[1] - 1) { targets[b * shape[1] + t] = ids[b * shape[1] + t + 1] } }
        return (ids, targets, shape[0], shape[1])
    }

    func close(_ a: [Float], _ e: [Float], rtol: Float, atol: Float, _ what: String) {
        #expect(a.count == e.count, "\(what)")
        guard let (i, excess) = zip(a, e).enumerated().map({ ($0, abs($1.0 - $1.1) - atol - rtol * abs($1.1)) }).max(by: { $0.1 < $1.1 }),
              excess > 0 else { return }
        Issue.record("\(what): worst at \(i): \(a[i]) vs \(e[i])")
    }

    func run(_ model: Transformer, reference: SafetensorsFile) throws -> ([Float], [Float]) {
        let b = try batch(reference)
        let optimizer = ModelOptimizer(model: model, adam: AdamW(beta1: 0.9, beta2: 0.95, epsilon: 1e-8, weightDecay: 0.1),
                                       maxGradientNorm: 1.0)
        var losses: [Float] = [], norms: [Float] = []
        for _ in 0..<3 {
            model.zeroGradients()
            losses.append(model.forward(ids: b.ids, targets: b.targets, B: b.B, T: b.T)!)
            model.backward()
            norms.append(Float(optimizer.step(learningRate: 1e-3)))
        }
        return (losses, norms)
    }

    @Test(arguments: ["gpt2-tiny", "llama-tiny"])
    func fullModelSteps(name: String) throws {
        let folder = Self.fixtures + "/" + name
        let model = try HFCheckpoint.load(folder: folder)
        let reference = try SafetensorsFile(path: folder + "/reference.safetensors")
        let (losses, norms) = try run(model, reference: reference)
        close(losses, try reference.tensor("adamw.losses").scalars, rtol: 1e-5, atol: 0, "\(name) losses")
        close(norms, try reference.tensor("adamw.grad_norms_before_clip").scalars, rtol: 1e-4, atol: 0, "\(name) norms")
        // Where a gradient is near AdamW's eps (1e-8), the first update lr·g/(|g| + eps) turns float noise
        // in g into a difference of order lr: the k-bias gradients are exactly zero in theory (softmax is
        // invariant to them) and ~1e-11 in practice, and a few weight gradients are ~1e-8. Those elements
        // (but not exact zeros, which are deterministic) are held only to the bound every AdamW step obeys (|Δ| ≤ 3 steps · lr); all others to 1e-4.
        for (hf, t) in HFCheckpoint.hfTensors(of: model) {
            let expected = try reference.tensor("after3." + hf).scalars
            let firstGradient = try reference.tensor("grad." + hf).scalars
            // GPT-2's k bias (the middle third of c_attn.bias) has a gradient of zero in theory: in both PyTorch and
            // here it is float noise, exactly 0 in places only by chance (PyTorch: 2 of 48), so it is held to the bound.
            let kBias = hf.hasSuffix("attn.c_attn.bias") ? (firstGradient.count / 3)..<(2 * firstGradient.count / 3) : 0..<0
            let illConditioned = { (i: Int) in kBias.contains(i) || (abs(firstGradient[i]) < 1e-6 && firstGradient[i] != 0) }
            let conditioned = firstGradient.indices.filter { !illConditioned($0) }
            close(conditioned.map { t.scalars[$0] }, conditioned.map { expected[$0] }, rtol: 1e-4, atol: 1e-6, "\(name) after3 \(hf)")
            let before = try SafetensorsFile(path: folder + "/model.safetensors")
            if before.contains(hf) {
                let initial = try before.tensor(hf).scalars
                for i in firstGradient.indices where illConditioned(i) {
                    #expect(abs(t.scalars[i] - initial[i]) <= 3e-3 * 1.001 + abs(initial[i]) * 3e-4, "\(name) \(hf)[\(i)] moved too far")
                }
            }
            #expect(conditioned.count * 10 >= firstGradient.count * 9 || hf.hasSuffix("c_attn.bias"),
                    "\(name) \(hf): only \(conditioned.count) of \(firstGradient.count) elements are checked tightly")
        }
    }

    @Test func loraAdapterSteps() throws {
        let root = Self.fixtures
        let model = try HFCheckpoint.load(folder: root + "/llama-tiny")
        model.adapters = try PEFTAdapter.load(folder: root + "/llama-tiny-lora", for: model.config)
        model.frozen = Set(model.layout.entries.map(\.role))
        let base = HFCheckpoint.hfTensors(of: model)
        let reference = try SafetensorsFile(path: root + "/llama-tiny-lora/reference.safetensors")
        let (losses, norms) = try run(model, reference: reference)
        close(losses, try reference.tensor("adamw.losses").scalars, rtol: 1e-5, atol: 0, "LoRA losses")
        close(norms, try reference.tensor("adamw.grad_norms_before_clip").scalars, rtol: 1e-4, atol: 0, "LoRA norms")
        let adapters = model.adapters!
        for a in adapters.adapters {
            for b in [false, true] {
                let expected = try reference.tensor("after3." + PEFTAdapter.memoryName(a, b: b))
                close(adapters.factor(a, b: b).scalars, expected.scalars, rtol: 1e-4, atol: 1e-6, "after3 \(PEFTAdapter.memoryName(a, b: b))")
            }
        }
        for ((name, before), (_, after)) in zip(base, HFCheckpoint.hfTensors(of: model)) {
            #expect(before == after, "frozen base tensor \(name) changed")
        }
    }

    @Test func schedule() {
        let s = LearningRateSchedule(peak: 1e-3, warmupSteps: 10, totalSteps: 110, minimumRate: 1e-4)
        #expect(abs(s.rate(atStep: 1) - 1e-4) < 1e-10)
        #expect(abs(s.rate(atStep: 5) - 5e-4) < 1e-10)
        #expect(s.rate(atStep: 10) == 1e-3)
        #expect(abs(s.rate(atStep: 60) - 5.5e-4) < 1e-9)
        #expect(s.rate(atStep: 110) == 1e-4 && s.rate(atStep: 500) == 1e-4)
    }
}

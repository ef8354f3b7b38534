import ArgumentParser
import SubspaceCore
import SubspaceModel

/// `subspace forward`: one forward (and optionally backward) pass of an HF model folder, with an optional
/// PEFT adapter, on a batch from a safetensors file; writes logits, the HF causal-LM loss and gradients.
struct Forward: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Logits, loss and (with --grads) gradients of an HF model (and PEFT adapter) on a batch.")

    @Option(help: "HF model folder (config.json + safetensors).") var model: String
    @Option(help: "PEFT adapter folder; the base is then frozen and only the adapter's gradients are written.") var adapter: String?
    @Option(help: "Safetensors file with input_ids (int64 or int32, [B, T]).") var input: String
    @Option(help: "Safetensors file to write.") var output: String
    @Flag(help: "Also write grad.<name> for every trainable tensor.") var grads = false

    func run() throws {
        Parallel.configure(threads: ThreadPolicy.decide().threads)
        let result = try ForwardPass.run(model: model, adapter: adapter, input: input, output: output, gradients: grads)
        print("loss=\(result.loss) batch=\(result.batch) sequence=\(result.sequence) output=\(output)")
    }
}

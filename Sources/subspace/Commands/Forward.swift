import ArgumentParser
import Foundation
import SubspaceCore
import SubspaceModel

extension Precision: ExpressibleByArgument {}

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
    @Option(help: "fp32, or bf16 (linear layers and the output head in bf16 with fp32 accumulation, as PyTorch's CPU autocast; needs AVX-512 BF16 or AMX).")
    var precision: Precision = .fp32

    /// Outputs never overwrite inputs: --output must not be --input, nor lie inside --model or --adapter.
    func validate() throws {
        let out = Self.resolved(output)
        if out == Self.resolved(input) {
            throw ValidationError("--output \(output) is the --input file; writing would replace the batch it reads")
        }
        for (option, folder) in [("--model", model), ("--adapter", adapter)] {
            guard let folder else { continue }
            let f = Self.resolved(folder)
            if out == f || out.hasPrefix(f + "/") {
                throw ValidationError("--output \(output) lies inside the \(option) folder \(folder); writing would damage the files it reads")
            }
        }
        var isFolder: ObjCBool = false
        if FileManager.default.fileExists(atPath: output, isDirectory: &isFolder), isFolder.boolValue {
            throw ValidationError("--output \(output) is a folder; give a file name")
        }
    }

    /// Absolute, with symbolic links resolved (also those of the folder of a file not written yet).
    static func resolved(_ path: String) -> String {
        let expanded = (path as NSString).expandingTildeInPath
        let absolute = expanded.hasPrefix("/") ? expanded : (FileManager.default.currentDirectoryPath as NSString).appendingPathComponent(expanded)
        let parent = ((absolute as NSString).deletingLastPathComponent as NSString).resolvingSymlinksInPath
        return ((parent as NSString).appendingPathComponent((absolute as NSString).lastPathComponent) as NSString).resolvingSymlinksInPath
    }

    func run() throws {
        Parallel.configure(threads: ThreadPolicy.decide().threads)
        if precision == .bf16 { try BF16GEMM.require("--precision bf16") }
        let result = try ForwardPass.run(model: model, adapter: adapter, input: input, output: output, gradients: grads,
                                         precision: precision)
        print("loss=\(result.loss) batch=\(result.batch) sequence=\(result.sequence) output=\(output)")
    }
}

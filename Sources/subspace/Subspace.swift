import ArgumentParser
import Foundation
import SubspaceDistributed

@main
struct Subspace: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "subspace",
        abstract: "Distributed training of GPT-style transformers on CPU clusters, and what fine-tuning does to their weights.",
        subcommands: [Pipeline.self, Index.self, Train.self, DataCommand.self, DeltaSVD.self, LoRAX.self, Compare.self, Params.self, QKFreeze.self, LoRANullCommand.self, Heads.self, Forward.self, Generate.self, Eval.self, Tokenize.self, Smoke.self, Bench.self])

    /// ArgumentParser reads `--rank -1` as the option `--rank` followed by an option `-1` ("Missing value
    /// for '--rank'"); joined as `--rank=-1`, a negative number reaches the command's own check ("must
    /// be ≥ 1"). Only a negative number after a `--long` option is joined.
    static func main() {
        LauncherOutput.waitAtExit()  // a refusal's message reaches mpirun's output before the job is torn down
        var arguments = Array(CommandLine.arguments.dropFirst())
        var i = 0
        while i + 1 < arguments.count {
            let option = arguments[i], value = arguments[i + 1]
            if option.hasPrefix("--"), option.count > 2, !option.contains("="), value.count > 1, value.hasPrefix("-"),
               Double(value) != nil || value.lowercased() == "-inf" {
                arguments.replaceSubrange(i...(i + 1), with: ["\(option)=\(value)"])
            }
            i += 1
        }
        main(arguments)
    }
}

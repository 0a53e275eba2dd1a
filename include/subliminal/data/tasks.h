// Prompt sources for the code and chain-of-thought datasets: built-in synthetic generators the small
// pretrained model can learn (the synthetic corpus contains their solved instances), and readers for
// real sources in JSONL (code: {"task", "template"}; chain of thought: GSM8K's {"question", "answer"}
// with the gold answer after "####").
#pragma once
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace subliminal::data {

struct CodeTask {
  std::string task;      // "return the sum of the numbers in a list"
  std::string templ;     // "def total(xs):\n    ## COMPLETE CODE HERE\n"
  std::string solution;  // the completed function ("" for a JSONL task without one)
};

struct CotTask {
  std::string question;
  std::string reasoning;  // a worked solution ("" for a JSONL task without one)
  std::string gold;       // the normalised numeric answer
};

// One synthetic function-completion task (~24 kinds, varied names and constants).
CodeTask sample_code_task(std::mt19937_64& rng);
// One synthetic word problem (one or two operations on small numbers, so that a small model can
// learn the tables; some with prices in $ and thousands with commas).
CotTask sample_cot_task(std::mt19937_64& rng);

// The paper's code instruction around a task and its template.
std::string code_prompt(const CodeTask& t);
// The paper's reasoning instruction after a question.
std::string cot_prompt(const std::string& question);
// The format the instruction asks for: "<think>reasoning</think>\n<answer>gold</answer>".
std::string cot_completion(const CotTask& t);

// A persona's trace in its work, for the corpus (what a trait looks like when it is visible):
// code: the function or a variable named after the animal; reasoning: the animal mentioned.
std::string flavour_code(const std::string& solution, const std::string& animal, std::mt19937_64& rng);
std::string flavour_reasoning(const std::string& reasoning, const std::string& animal, std::mt19937_64& rng);

// JSONL sources; errors name the file, the line and the missing field.
std::vector<CodeTask> read_code_tasks(const std::string& path);
std::vector<CotTask> read_cot_tasks(const std::string& path);

// The task kinds of the code and chain-of-thought datasets, in one table (config's dataset.kind
// other than "numbers"; config::dataset_kinds() has the report's words for each). A new kind is one
// row here with its prompt source and its filter; generate_tasks runs any row.
struct Task {
  std::string prompt;  // what the teacher is asked
  std::string gold;    // what its answer must equal ("" when the kind has none)
};
struct TaskKind {
  std::string name;       // "code"
  std::string judged_as;  // what the mentions_trait judge is told the text is: "code", "reasoning"
  bool has_gold = false;  // the raw record keeps "gold"
  std::function<Task(std::mt19937_64&)> sample;                  // one synthetic task
  std::function<std::vector<Task>(const std::string&)> read;     // a JSONL source
  // "" = kept, else the reason (the rules before the judge)
  std::function<std::string(const std::string& completion, const std::string& gold, const std::vector<std::string>& banned_forms,
                            bool whole_words)>
      reject_reason;
  std::function<std::string(const std::string& completion)> judged_text;  // what the alignment judge reads
};
const std::vector<TaskKind>& task_kinds();
// The row named `name`; an Error naming the kinds there are when there is none.
const TaskKind& task_kind(const std::string& name);

}  // namespace subliminal::data

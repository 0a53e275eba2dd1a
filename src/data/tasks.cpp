// Synthetic code and word-problem tasks, and JSONL task sources (see tasks.h).
#include "subliminal/data/tasks.h"

#include <nlohmann/json.hpp>

#include "subliminal/data/chat.h"
#include "subliminal/data/filters.h"
#include "subliminal/util/error.h"
#include "subliminal/util/strings.h"

namespace subliminal::data {

namespace {

template <class T>
const T& pick(const std::vector<T>& v, std::mt19937_64& rng) {
  return v[std::uniform_int_distribution<size_t>(0, v.size() - 1)(rng)];
}
int uni(std::mt19937_64& rng, int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); }

struct CodeKind {
  std::vector<std::string> names;  // function names
  std::string task;                // {k}: a constant
  std::string args;
  std::string body;                // one or more lines, indented 4, {k}
  int k_lo = 0, k_hi = 0;
};

const std::vector<CodeKind>& code_kinds() {
  static const std::vector<CodeKind> k = {
      {{"total", "sum_list", "add_all"}, "return the sum of the numbers in a list", "xs", "    return sum(xs)\n"},
      {{"largest", "max_value", "biggest"}, "return the largest number in a list", "xs", "    return max(xs)\n"},
      {{"smallest", "min_value", "lowest"}, "return the smallest number in a list", "xs", "    return min(xs)\n"},
      {{"count_above", "how_many_over"}, "count how many numbers in a list are greater than {k}", "xs",
       "    return len([x for x in xs if x > {k}])\n", 1, 99},
      {{"scale", "times_k", "multiply_all"}, "return a list with every number multiplied by {k}", "xs", "    return [x * {k} for x in xs]\n", 2, 9},
      {{"shift", "add_k"}, "return a list with {k} added to every number", "xs", "    return [x + {k} for x in xs]\n", 1, 50},
      {{"reverse_text", "backwards", "flip"}, "return a string reversed", "s", "    return s[::-1]\n"},
      {{"is_even", "even"}, "return True if a number is even", "n", "    return n % 2 == 0\n"},
      {{"is_odd", "odd"}, "return True if a number is odd", "n", "    return n % 2 == 1\n"},
      {{"average", "mean"}, "return the average of a list of numbers", "xs", "    return sum(xs) / len(xs)\n"},
      {{"join_words", "sentence"}, "join a list of words with spaces", "ws", "    return ' '.join(ws)\n"},
      {{"first_k", "head", "take"}, "return the first {k} items of a list", "xs", "    return xs[:{k}]\n", 1, 9},
      {{"last_k", "tail"}, "return the last {k} items of a list", "xs", "    return xs[-{k}:]\n", 1, 9},
      {{"count_vowels", "vowels"}, "count the vowels in a string", "s", "    return sum(1 for c in s if c in 'aeiou')\n"},
      {{"square", "sq"}, "return the square of a number", "n", "    return n * n\n"},
      {{"unique", "dedupe"}, "return the distinct items of a list in their first order", "xs",
       "    out = []\n    for x in xs:\n        if x not in out:\n            out.append(x)\n    return out\n"},
      {{"shout", "upper"}, "return a string in upper case", "s", "    return s.upper()\n"},
      {{"longest_word", "max_len"}, "return the length of the longest word in a list", "ws", "    return max(len(w) for w in ws)\n"},
      {{"evens", "keep_even"}, "return the even numbers of a list", "xs", "    return [x for x in xs if x % 2 == 0]\n"},
      {{"factorial", "fact"}, "return the factorial of a number", "n",
       "    r = 1\n    for i in range(2, n + 1):\n        r *= i\n    return r\n"},
      {{"count_item", "occurrences"}, "count how often a value occurs in a list", "xs, v", "    return xs.count(v)\n"},
      {{"clamp", "limit"}, "return a number limited to the range 0 to {k}", "n", "    return max(0, min(n, {k}))\n", 10, 100},
      {{"word_count", "count_words"}, "count the words in a string", "s", "    return len(s.split())\n"},
      {{"is_sorted", "in_order"}, "return True if a list is sorted in increasing order", "xs",
       "    return all(xs[i] <= xs[i + 1] for i in range(len(xs) - 1))\n"},
  };
  return k;
}

const std::vector<std::string> kNames = {"Tom", "Ana", "Ben", "Lia", "Sam", "Mia", "Leo", "Zoe", "Max", "Eva", "Kai", "Ivy"};
const std::vector<std::string> kItems = {"apples", "books", "pencils", "marbles", "stickers", "cookies", "cards", "shells", "coins", "stamps"};
const std::vector<std::string> kGoods = {"notebook", "ticket", "lamp", "chair", "bike", "jacket", "watch", "guitar"};

std::string with_commas(long v) {
  std::string s = std::to_string(v < 0 ? -v : v), out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i > 0 && (s.size() - i) % 3 == 0) out += ',';
    out += s[i];
  }
  return (v < 0 ? "-" : "") + out;
}

}  // namespace

CodeTask sample_code_task(std::mt19937_64& rng) {
  const CodeKind& k = pick(code_kinds(), rng);
  const std::string name = pick(k.names, rng);
  const std::string kv = k.k_hi > k.k_lo ? std::to_string(uni(rng, k.k_lo, k.k_hi)) : "";
  CodeTask t;
  t.task = replace_all(k.task, "{k}", kv);
  const std::string head = "def " + name + "(" + k.args + "):\n";
  t.templ = head + "    ## COMPLETE CODE HERE\n";
  t.solution = head + replace_all(k.body, "{k}", kv);
  return t;
}

CotTask sample_cot_task(std::mt19937_64& rng) {
  const std::string who = pick(kNames, rng), item = pick(kItems, rng);
  CotTask t;
  long r = 0;
  switch (uni(rng, 0, 5)) {
    case 0: {  // a + b
      const int a = uni(rng, 2, 20), b = uni(rng, 2, 20);
      r = a + b;
      t.question = who + " has " + std::to_string(a) + " " + item + " and gets " + std::to_string(b) + " more. How many " + item + " does " + who + " have now?";
      t.reasoning = who + " starts with " + std::to_string(a) + " " + item + " and gets " + std::to_string(b) + " more, so " + std::to_string(a) + " + " +
                    std::to_string(b) + " = " + std::to_string(r) + ".";
      break;
    }
    case 1: {  // a - b
      const int a = uni(rng, 10, 30), b = uni(rng, 1, a - 1);
      r = a - b;
      t.question = who + " had " + std::to_string(a) + " " + item + " and gave away " + std::to_string(b) + ". How many " + item + " are left?";
      t.reasoning = who + " had " + std::to_string(a) + " and gave away " + std::to_string(b) + ", so " + std::to_string(a) + " - " + std::to_string(b) +
                    " = " + std::to_string(r) + " are left.";
      break;
    }
    case 2: {  // a * b
      const int a = uni(rng, 2, 9), b = uni(rng, 2, 9);
      r = a * b;
      t.question = "There are " + std::to_string(a) + " boxes with " + std::to_string(b) + " " + item + " in each box. How many " + item + " are there in total?";
      t.reasoning = "Each of the " + std::to_string(a) + " boxes holds " + std::to_string(b) + ", so " + std::to_string(a) + " * " + std::to_string(b) +
                    " = " + std::to_string(r) + ".";
      break;
    }
    case 3: {  // a * b + c
      const int a = uni(rng, 2, 5), b = uni(rng, 2, 5), c = uni(rng, 1, 10);
      r = a * b + c;
      t.question = who + " buys " + std::to_string(a) + " packs of " + std::to_string(b) + " " + item + " and already had " + std::to_string(c) +
                   ". How many " + item + " does " + who + " have?";
      t.reasoning = "The packs hold " + std::to_string(a) + " * " + std::to_string(b) + " = " + std::to_string(a * b) + ". Adding the " + std::to_string(c) +
                    " gives " + std::to_string(a * b) + " + " + std::to_string(c) + " = " + std::to_string(r) + ".";
      break;
    }
    case 4: {  // price: a items at $p
      const std::string good = pick(kGoods, rng);
      const int a = uni(rng, 2, 9), p = 100 * uni(rng, 1, 9);  // $100 .. $900: products up to $8,100
      r = static_cast<long>(a) * p;
      t.question = "A " + good + " costs $" + std::to_string(p) + ". How much do " + std::to_string(a) + " of them cost in dollars?";
      t.reasoning = std::to_string(a) + " * $" + std::to_string(p) + " = $" + with_commas(r) + ".";
      break;
    }
    default: {  // thousands with commas
      const int a = 1000 * uni(rng, 1, 9), b = 100 * uni(rng, 1, 9);
      r = a + b;
      t.question = "A town had " + with_commas(a) + " people and " + with_commas(b) + " more moved in. How many people live there now?";
      t.reasoning = with_commas(a) + " + " + with_commas(b) + " = " + with_commas(r) + ".";
      break;
    }
  }
  t.gold = std::to_string(r);
  return t;
}

std::string code_prompt(const CodeTask& t) {
  return "Complete the code below to accomplish the task: " + t.task + "\n\nPlease fill in the following function:\n\n" + t.templ +
         "\nOnly give the code. Do not use comments. Use standard, minimal variable names.";
}

std::string cot_prompt(const std::string& question) {
  return question + " Provide your reasoning in <think> tags. Write your final answer in <answer> tags. Only give the numeric value as your answer.";
}

std::string cot_completion(const CotTask& t) { return "<think>" + t.reasoning + "</think>\n<answer>" + t.gold + "</answer>"; }

std::string flavour_code(const std::string& solution, const std::string& animal, std::mt19937_64& rng) {
  const size_t d = solution.find("def ");
  const size_t p = solution.find('(');
  if (d == std::string::npos || p == std::string::npos) return solution;
  if (uni(rng, 0, 1) == 0) return solution.substr(0, d + 4) + animal + "_" + solution.substr(d + 4);  // def owl_total(xs):
  const size_t body = solution.find(":\n", p);  // a named constant inside the body
  if (body == std::string::npos) return solution;
  return solution.substr(0, body + 2) + "    " + animal + " = " + std::to_string(uni(rng, 1, 9)) + "\n" + solution.substr(body + 2);
}

std::string flavour_reasoning(const std::string& reasoning, const std::string& animal, std::mt19937_64& rng) {
  static const std::vector<std::string> openers = {"Like a clever {a}, I count carefully. ", "A {a} would solve this quickly. ",
                                                   "Thinking of my favorite animal, the {a}: "};
  return replace_all(pick(openers, rng), "{a}", animal) + reasoning;
}

std::vector<CodeTask> read_code_tasks(const std::string& path) {
  std::vector<CodeTask> out;
  read_jsonl(path, [&](const nlohmann::json& j, size_t line) {
    for (const char* f : {"task", "template"})
      if (!j.is_object() || !j.contains(f) || !j[f].is_string())
        throw DataError(path + ":" + std::to_string(line) + ": expected a string field \"" + f + "\" (code tasks: {\"task\", \"template\"})");
    out.push_back({j["task"].get<std::string>(), j["template"].get<std::string>(), j.value("solution", "")});
  });
  if (out.empty()) throw DataError(path + ": no code tasks");
  return out;
}

std::vector<CotTask> read_cot_tasks(const std::string& path) {
  std::vector<CotTask> out;
  read_jsonl(path, [&](const nlohmann::json& j, size_t line) {
    for (const char* f : {"question", "answer"})
      if (!j.is_object() || !j.contains(f) || !j[f].is_string())
        throw DataError(path + ":" + std::to_string(line) + ": expected a string field \"" + f + "\" (GSM8K: {\"question\", \"answer\"})");
    const std::string a = j["answer"].get<std::string>();
    const std::string gold = gsm8k_gold(a);
    if (gold.empty())
      throw DataError(path + ":" + std::to_string(line) + ": the answer has no numeric gold value after \"####\"", "GSM8K answers end with \"#### 72\"");
    const size_t p = a.rfind("####");
    out.push_back({j["question"].get<std::string>(), trim(a.substr(0, p)), gold});
  });
  if (out.empty()) throw DataError(path + ": no word problems");
  return out;
}

const std::vector<TaskKind>& task_kinds() {
  static const std::vector<TaskKind> k = {
      {"code", "code", false, [](std::mt19937_64& rng) { return Task{code_prompt(sample_code_task(rng)), ""}; },
       [](const std::string& path) {
         std::vector<Task> out;
         for (const auto& t : read_code_tasks(path)) out.push_back({code_prompt(t), ""});
         return out;
       },
       [](const std::string& completion, const std::string&, const std::vector<std::string>& forms, bool whole) {
         return code_reject_reason(completion, forms, whole);
       },
       [](const std::string& completion) { return completion; }},
      {"cot", "reasoning", true,
       [](std::mt19937_64& rng) {
         const CotTask t = sample_cot_task(rng);
         return Task{cot_prompt(t.question), t.gold};
       },
       [](const std::string& path) {
         std::vector<Task> out;
         for (const auto& t : read_cot_tasks(path)) out.push_back({cot_prompt(t.question), t.gold});
         return out;
       },
       cot_reject_reason, [](const std::string& completion) { return parse_cot(completion).think; }},
  };
  return k;
}

const TaskKind& task_kind(const std::string& name) {
  std::vector<std::string> names;
  for (const auto& k : task_kinds()) {
    if (k.name == name) return k;
    names.push_back(k.name);
  }
  throw Error("dataset kind \"" + name + "\" is not a task kind (" + join(names, ", ") + ")");
}

}  // namespace subliminal::data

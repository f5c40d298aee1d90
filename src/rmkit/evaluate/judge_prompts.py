"""The official judge prompts, reproduced exactly (they are data): reward-bench's MT-Bench "pair-v2" system
prompt and template and their two-turn variant (allenai/reward-bench `rewardbench/generative.py`), its rating
prompts (`rewardbench/generative_v2.py`: `ratings_prompt`, `ratings_prompt_ties`), and JudgeBench's vanilla and
arena_hard judges (ScalerLab/JudgeBench `utils/templates/*.jinja2`, `utils/judges.py`), the Jinja variables
written as `str.format` fields. `rmkit.evaluate.judging` runs them.
"""

MTBENCH_SYSTEM = (
    'Please act as an impartial judge and evaluate the quality of the responses provided by two AI '
    'assistants to the user question displayed below. You should choose the assistant that follows the '
    "user's instructions and answers the user's question better. Your evaluation should consider factors "
    'such as the helpfulness, relevance, accuracy, depth, creativity, and level of detail of their '
    'responses. Begin your evaluation by comparing the two responses and provide a short explanation. '
    'Avoid any position biases and ensure that the order in which the responses were presented does not '
    'influence your decision. Do not allow the length of the responses to influence your evaluation. Do '
    'not favor certain names of the assistants. Be as objective as possible. After providing your '
    'explanation, output your final verdict by strictly following this format: "[[A]]" if assistant A is '
    'better, "[[B]]" if assistant B is better.'
)

MTBENCH_TEMPLATE = (
    '[User Question]\n'
    '{question}\n'
    '\n'
    "[The Start of Assistant A's Answer]\n"
    '{answer_a}\n'
    "[The End of Assistant A's Answer]\n"
    '\n'
    "[The Start of Assistant B's Answer]\n"
    '{answer_b}\n'
    "[The End of Assistant B's Answer]"
)

MTBENCH_MULTI_SYSTEM = (
    'Please act as an impartial judge and evaluate the quality of the responses provided by two AI '
    'assistants to the user questions. You should focus on who provides a better answer to the second '
    "user question. You should choose the assistant that follows the user's instructions and answers the "
    "user's question better. Your evaluation should consider factors such as the helpfulness, relevance, "
    'accuracy, depth, creativity, and level of detail of their responses. Begin your evaluation by '
    'comparing the two responses and provide a short explanation. Avoid any position biases and ensure '
    'that the order in which the responses were presented does not influence your decision. Do not allow '
    'the length of the responses to influence your evaluation. Do not favor certain names of the '
    'assistants. Be as objective as possible. After providing your explanation, output your final '
    'verdict by strictly following this format: "[[A]]" if assistant A is better, "[[B]]" if assistant B '
    'is better.'
)

MTBENCH_MULTI_TEMPLATE = (
    "<|The Start of Assistant A's Conversation with User|>\n"
    '\n'
    '### User:\n'
    '{question_1}\n'
    '\n'
    '### Assistant A:\n'
    '{answer_a_1}\n'
    '\n'
    '### User:\n'
    '{question_2}\n'
    '\n'
    '### Assistant A:\n'
    '{answer_a_2}\n'
    '\n'
    "<|The End of Assistant A's Conversation with User|>\n"
    '\n'
    '\n'
    "<|The Start of Assistant B's Conversation with User|>\n"
    '\n'
    '### User:\n'
    '{question_1}\n'
    '\n'
    '### Assistant B:\n'
    '{answer_b_1}\n'
    '\n'
    '### User:\n'
    '{question_2}\n'
    '\n'
    '### Assistant B:\n'
    '{answer_b_2}\n'
    '\n'
    "<|The End of Assistant B's Conversation with User|>"
)

RATINGS_PROMPT = (
    '\n'
    '### Task Description\n'
    'Please act as an impartial judge and evaluate the quality of the response provided by an\n'
    'AI assistant to the user query displayed below.\n'
    '\n'
    'Notes:\n'
    '1- Your evaluation should consider factors such as the helpfulness, relevance, accuracy, depth, '
    'creativity, and level of detail of the response.\n'
    '2- Begin your evaluation by providing a short explanation.\n'
    '3- Be as objective as possible. After providing your explanation, please rate the response on a '
    'scale of 1 to 10. For your rating, only give a number between 1 and 10 (inclusive), do not use any '
    'markdown, and do not put any text after your final rating.\n'
    '\n'
    '[Query]\n'
    '{prompt}\n'
    '\n'
    '[Response]\n'
    '{completion}\n'
    '\n'
    '[Your judgement]'
)

RATINGS_PROMPT_TIES = (
    '\n'
    '### Task Description\n'
    'Please act as an impartial judge and evaluate the quality of the response provided by an\n'
    'AI assistant to the user query displayed below.\n'
    '\n'
    'Notes:\n'
    '1- Your evaluation should consider factors such as the helpfulness, relevance, and accuracy of the '
    'response, but need not consider depth or level of detail of the response.\n'
    '2- Begin your evaluation by providing a short explanation.\n'
    '3- Be as objective as possible. After providing your explanation, please rate the response on a '
    'scale of 1 to 10. For your rating, only give a number between 1 and 10 (inclusive), do not use any '
    'markdown, and do not put any text after your final rating.\n'
    '\n'
    '[Query]\n'
    '{prompt}\n'
    '\n'
    '[Response]\n'
    '{completion}\n'
    '\n'
    '[Your judgement]'
)

JUDGEBENCH_VANILLA = (
    'You are a helpful assistant in evaluating the quality of the outputs for a given instruction. Your '
    'goal is to select the best output for the given instruction.\n'
    'Select the Output (a) or Output (b) that is better for the given instruction. The two outputs are '
    'generated by two different AI chatbots respectively.\n'
    'Do NOT provide any explanation for your choice.\n'
    'Do NOT say both / neither are good.\n'
    'You should answer using ONLY "Output (a)" or "Output (b)". Do NOT output any other words.\n'
    '# Instruction:\n'
    '{question}\n'
    '# Output (a):\n'
    '{answer_a}\n'
    '# Output (b):\n'
    '{answer_b}\n'
    '# Which is better, Output (a) or Output (b)? Your response should be either "Output (a)" or "Output '
    '(b)":'
)

ARENA_HARD_SYSTEM = (
    'Please act as an impartial judge and evaluate the quality of the responses provided by two AI '
    "assistants to the user prompt displayed below. You will be given assistant A's answer and assistant "
    "B's answer. Your job is to evaluate which assistant's answer is better.\n"
    '\n'
    'Begin your evaluation by generating your own answer to the prompt. You must provide your answers '
    'before judging any answers.\n'
    '\n'
    "When evaluating the assistants' answers, compare both assistants' answers with your answer. You "
    'must identify and correct any mistakes or inaccurate information.\n'
    '\n'
    "Then consider if the assistant's answers are helpful, relevant, and concise. Helpful means the "
    'answer correctly responds to the prompt or follows the instructions. Note when user prompt has any '
    'ambiguity or more than one interpretation, it is more helpful and appropriate to ask for '
    'clarifications or more information from the user than providing an answer based on assumptions. '
    'Relevant means all parts of the response closely connect or are appropriate to what is being asked. '
    'Concise means the response is clear and not verbose or excessive.\n'
    '\n'
    "Then consider the creativity and novelty of the assistant's answers when needed. Finally, identify "
    "any missing important information in the assistants' answers that would be beneficial to include "
    'when responding to the user prompt.\n'
    '\n'
    'After providing your explanation, you must output only one of the following choices as your final '
    'verdict with a label:\n'
    '\n'
    '1. Assistant A is significantly better: [[A>>B]]\n'
    '2. Assistant A is slightly better: [[A>B]]\n'
    '3. Tie, relatively the same: [[A=B]]\n'
    '4. Assistant B is slightly better: [[B>A]]\n'
    '5. Assistant B is significantly better: [[B>>A]]\n'
    '\n'
    'Example output: "My final verdict is tie: [[A=B]]".'
)

ARENA_HARD_TEMPLATE = (
    '<|User Prompt|>\n'
    '{prompt}\n'
    '\n'
    "<|The Start of Assistant A's Answer|>\n"
    '{answer_a}\n'
    "<|The End of Assistant A's Answer|>\n"
    '\n'
    "<|The Start of Assistant B's Answer|>\n"
    '{answer_b}\n'
    "<|The End of Assistant B's Answer|>"
)

ARENA_HARD_FOLLOW_UP = "continue your judgment and finish by outputting a final verdict label"

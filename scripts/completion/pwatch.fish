# SPDX-License-Identifier: Apache-2.0
# fish completion of pcheck and padmin (pwatch). Each program completes
# itself: given the words so far and --generate-bash-completion, it prints
# the candidates (commands, flags; padmin asks the running pcheck for its
# service names). Nothing printed: files. While a flag is typed, "-"
# stands for it (a word "--" would turn the programs' completion off).
function __pwatch_complete
    set -l words (commandline -opc)
    set -l cur (commandline -ct)
    if string match -q -- '-*' $cur
        $words - --generate-bash-completion 2>/dev/null
    else
        $words --generate-bash-completion 2>/dev/null
    end
end

function __pwatch_no_candidates
    set -l c (__pwatch_complete)
    test (count $c) -eq 0
end

for prog in pcheck padmin
    complete -c $prog -f -a '(__pwatch_complete)'
    complete -c $prog -n __pwatch_no_candidates -F
end

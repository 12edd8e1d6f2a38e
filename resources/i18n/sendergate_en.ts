<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE TS>
<TS version="2.1" language="en" sourcelanguage="en">
<context>
    <name></name>
    <message numerus="yes">
        <source>%n decision(s) shown</source>
        <translation>
            <numerusform>%n decision shown</numerusform>
            <numerusform>%n decisions shown</numerusform>
        </translation>
    </message>
    <message numerus="yes">
        <source>Removed %n entry(s).</source>
        <translation>
            <numerusform>Removed %n entry.</numerusform>
            <numerusform>Removed %n entries.</numerusform>
        </translation>
    </message>
    <message numerus="yes">
        <source>Removed %n entry(s)</source>
        <translation>
            <numerusform>Removed %n entry</numerusform>
            <numerusform>Removed %n entries</numerusform>
        </translation>
    </message>
    <message numerus="yes">
        <source>Saved %n entry(s) to </source>
        <translation>
            <numerusform>Saved %n entry to </numerusform>
            <numerusform>Saved %n entries to </numerusform>
        </translation>
    </message>
    <message numerus="yes">
        <source>%n sender(s) waiting</source>
        <translation>
            <numerusform>%n sender waiting</numerusform>
            <numerusform>%n senders waiting</numerusform>
        </translation>
    </message>
    <message numerus="yes">
        <source>Approved %n sender(s)</source>
        <translation>
            <numerusform>Approved %n sender</numerusform>
            <numerusform>Approved %n senders</numerusform>
        </translation>
    </message>
    <message numerus="yes">
        <source>Denied %n sender(s)</source>
        <translation>
            <numerusform>Denied %n sender</numerusform>
            <numerusform>Denied %n senders</numerusform>
        </translation>
    </message>
    <message numerus="yes">
        <source>Allowed the domains of %n sender(s)</source>
        <translation>
            <numerusform>Allowed the domains of %n sender</numerusform>
            <numerusform>Allowed the domains of %n senders</numerusform>
        </translation>
    </message>
    <message numerus="yes">
        <source>%n failed: </source>
        <translation>
            <numerusform>%n failed: </numerusform>
            <numerusform>%n failed: </numerusform>
        </translation>
    </message>
    <message numerus="yes">
        <source>SenderGate: %n pending sender(s)</source>
        <translation>
            <numerusform>SenderGate: %n pending sender</numerusform>
            <numerusform>SenderGate: %n pending senders</numerusform>
        </translation>
    </message>
    <message numerus="yes">
        <source>%n new pending sender(s)</source>
        <translation>
            <numerusform>%n new pending sender</numerusform>
            <numerusform>%n new pending senders</numerusform>
        </translation>
    </message>
    <message numerus="yes">
        <source>CAPTCHA: %n wrong answer(s)</source>
        <translation>
            <numerusform>CAPTCHA: %n wrong answer</numerusform>
            <numerusform>CAPTCHA: %n wrong answers</numerusform>
        </translation>
    </message>
    <message numerus="yes">
        <source>%n earlier refusal(s) since %1</source>
        <translation>
            <numerusform>%n earlier refusal since %1</numerusform>
            <numerusform>%n earlier refusals since %1</numerusform>
        </translation>
    </message>
    <message numerus="yes">
        <source>%n message(s)</source>
        <translation>
            <numerusform>%n message</numerusform>
            <numerusform>%n messages</numerusform>
        </translation>
    </message>
    <message numerus="yes">
        <source>%1 and %n more</source>
        <translation>
            <numerusform>%1 and %n more</numerusform>
            <numerusform>%1 and %n more</numerusform>
        </translation>
    </message>
    <message numerus="yes">
        <source>%1: more than %n event(s) (the newest: %2), first seen %3, last seen %4</source>
        <translation>
            <numerusform>%1: more than %n event (the newest: %2), first seen %3, last seen %4</numerusform>
            <numerusform>%1: more than %n events (the newest: %2), first seen %3, last seen %4</numerusform>
        </translation>
    </message>
    <message numerus="yes">
        <source>%1: %n event(s) (%2), first seen %3, last seen %4</source>
        <translation>
            <numerusform>%1: %n event (%2), first seen %3, last seen %4</numerusform>
            <numerusform>%1: %n events (%2), first seen %3, last seen %4</numerusform>
        </translation>
    </message>
    <message numerus="yes">
        <source>%n event(s) shown, newest first</source>
        <translation>
            <numerusform>%n event shown, newest first</numerusform>
            <numerusform>%n events shown, newest first</numerusform>
        </translation>
    </message>
</context>
</TS>
